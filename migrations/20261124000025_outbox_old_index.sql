-- no-transaction
-- The partial index on position alone, replaced by events_unpublished_order_idx.
drop index concurrently if exists eventstore.events_unpublished_idx;
