-- Retention (workers/src/retention.rs) deletes by these times in chunks; without an index each
-- chunk would scan the whole table.
create index refresh_tokens_expiry_idx on auth.refresh_tokens (expires_at);
create index email_tokens_expiry_idx on auth.email_tokens (expires_at);
create index email_tokens_used_idx on auth.email_tokens (used_at) where used_at is not null;
create index oauth_states_expiry_idx on auth.oauth_states (expires_at);
create index mail_outbox_age_idx on auth.mail_outbox ((coalesce(sent_at, created_at)));
