-- no-transaction
-- The operator gauges look at the events recorded in the last 24 hours (`workers::gauges`:
-- projection lag, every GAUGE_INTERVAL_MS, per consumer, in every workers process). With no
-- index on recorded_at, each look read the whole log, so its cost grew with the log's age, not
-- with the day's traffic. The log is appended mostly in recorded_at order (the time of each
-- transaction's start; updates such as the relay's stamps move rows, and later inserts fill the
-- space they free, which widens a range's summary over time), so a BRIN index (a summary of each
-- range of pages) lets those looks skip most pages older than the window, and it costs next to
-- nothing to keep up: no entry per row, unlike a b-tree on the hot insert path. Since the gauges
-- read from a cursor (`workers::ops::lag_since`), this serves a process's first sample and those
-- an unapplied event holds back. Ranges are summarised as autovacuum reaches them
-- (autosummarize); a range not yet summarised is simply read. Built concurrently (outside a
-- transaction), so a long log keeps taking writes.
create index concurrently if not exists events_recorded_at_brin
    on eventstore.events using brin (recorded_at) with (autosummarize = on);
