-- A tenant's key can be switched off (disabled = 1) or given an end (expires_at, Unix ms);
-- either way /poll answers kuaidi100 returnCode 601 ("key expired").
ALTER TABLE tenants ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN expires_at INTEGER;
