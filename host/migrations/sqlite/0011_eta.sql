-- Arrival estimates (issue 9 §3).
-- What each carrier's delivered parcels taught, per scope (`lane:440300-110000`,
-- `provinces:…`, `reach:same_city`, `carrier`): a JSON waybill_core::eta::LaneStats of
-- bounded size (log-binned histograms), merged in place by every delivery.
CREATE TABLE lanes (
    carrier    TEXT NOT NULL,
    scope      TEXT NOT NULL,
    stats      TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (carrier, scope)
);
-- The estimate made at the subscription's last evaluation (JSON waybill_core::eta::Estimate);
-- NULL: none (not evaluated yet, delivered, or on its way back).
ALTER TABLE subscriptions ADD COLUMN eta TEXT;
