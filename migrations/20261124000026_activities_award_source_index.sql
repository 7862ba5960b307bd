-- no-transaction
-- An activity entry's points are the sum of the awards paid for it (`readmodels::activities::
-- record_all`): the awards are history entries of action 'points' whose metadata names the
-- entry's event as `source_event_id`. Without an index on that key, each entry and each award
-- summed over every 'points' entry of the person: 9-10 ms a statement with a few thousand
-- entries per person, growing with their history. Built concurrently (outside a transaction),
-- so a long history keeps taking writes meanwhile.
create index concurrently if not exists activities_award_source_idx
    on read.activities (user_id, (metadata->>'source_event_id')) where action = 'points';
