-- Tenants' keys at rest: `api_key` holds a keyed hash (the lookup) and `api_key_sealed` the
-- key encrypted with the secret key kept beside the database (store/secrets.rs). Rows
-- written before this column existed are converted when the store is opened.
ALTER TABLE tenants ADD COLUMN api_key_sealed TEXT;
