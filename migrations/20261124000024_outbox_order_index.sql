-- no-transaction
-- The relay reads the unpublished tail in (transaction_id, position) order. With the partial
-- index on position alone, PostgreSQL combined it with the full (transaction_id, position)
-- index over the whole log for every round (4.8 ms a round at 75k events, growing with the
-- log); this one holds only the unpublished rows, already in the relay's order, and serves the
-- gauges' and the relay's "anything unpublished?" checks as well. Built concurrently (outside a
-- transaction, one statement per migration), so a long log keeps taking writes meanwhile; the
-- next migration drops the index it replaces.
create index concurrently if not exists events_unpublished_order_idx
    on eventstore.events (transaction_id, position) where published_at is null;
