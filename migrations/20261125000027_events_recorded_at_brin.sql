-- no-transaction
-- The operator gauges look at the events recorded in the last 24 hours (`workers::gauges`:
-- projection lag, every GAUGE_INTERVAL_MS, per consumer, in every workers process). With no
-- index on recorded_at, each look read the whole log, so its cost grew with the log's age, not
-- with the day's traffic. The log is appended in recorded_at order, so a BRIN index (a summary
-- of each range of pages) lets those looks skip every page older than the window, and it costs
-- next to nothing to keep up: no entry per row, unlike a b-tree on the hot insert path. Ranges
-- are summarised as autovacuum reaches them (autosummarize); a range not yet summarised is
-- simply read. Built concurrently (outside a transaction), so a long log keeps taking writes.
create index concurrently if not exists events_recorded_at_brin
    on eventstore.events using brin (recorded_at) with (autosummarize = on);
