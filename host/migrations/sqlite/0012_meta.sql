-- Facts about the store that every daemon sharing it must agree on, by name (e.g. the
-- sandbox's clock epoch); the first writer of a name wins (Store::init_setting).
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
