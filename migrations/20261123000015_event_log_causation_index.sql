-- Read-your-writes follows what a command caused (points.earned after a scan, level.reached
-- after an award) through causation_id: look those up by index, not by scanning the log.
create index events_causation_id_idx on eventstore.events (causation_id) where causation_id is not null;
