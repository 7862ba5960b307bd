-- One-time upgrade steps the workers have finished (e.g. `read-models-group`: no projection
-- queue from before the processing group is left), so they are not looked for again.
create table projection.upgrades (
    name     text primary key,
    done_at  timestamptz not null default now()
);
