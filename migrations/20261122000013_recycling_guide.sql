-- The recycling guide (issue: recycling guide and places).
create extension if not exists pg_trgm;

-- Command side: which guide content exists (edits of unknown ids answer 404) and a hash of its
-- current state, so `ecoctl seed` writes events only for what changed.
create table app.guide_content (
    kind          text not null check (kind in ('item', 'faq', 'region', 'place')),
    id            uuid not null,
    content_hash  text not null,
    removed       boolean not null default false,
    primary key (kind, id)
);

-- One "helpful" per user and question.
create table app.faq_helpful (
    faq_id     uuid not null,
    user_id    uuid not null,
    marked_at  timestamptz not null default now(),
    primary key (faq_id, user_id)
);

-- Read side, owned by projection.guide. Content rows keep the per-aggregate `sequence` of the
-- event that wrote them, so a late older event cannot overwrite a newer state; a removal leaves
-- a `removed` row for the same reason.
create table read.guide_items (
    item_id      uuid primary key,
    category     text not null default 'general',
    name_ko      text not null default '',
    name_en      text not null default '',
    disposal     text not null default '',
    donts        text[] not null default '{}',
    keywords     text[] not null default '{}',
    -- lower-cased names and keywords: what search matches against
    search_text  text not null default '',
    removed      boolean not null default false,
    sequence     bigint not null default 0,
    updated_at   timestamptz not null default now()
);
create index guide_items_category_idx on read.guide_items (category, name_ko, item_id) where not removed;
create index guide_items_trgm_idx on read.guide_items using gin (search_text gin_trgm_ops);
create index guide_items_fts_idx on read.guide_items using gin (to_tsvector('simple', search_text));

create table read.guide_faqs (
    faq_id      uuid primary key,
    category    text,
    question    text not null default '',
    answer      text not null default '',
    position    integer not null default 0,
    helpful     bigint not null default 0,
    removed     boolean not null default false,
    sequence    bigint not null default 0,
    updated_at  timestamptz not null default now()
);

create table read.guide_regions (
    region_id   uuid primary key,
    code        text not null unique,
    name_ko     text not null,
    name_en     text not null,
    schedule    text not null,
    rules       jsonb not null,
    sequence    bigint not null default 0,
    updated_at  timestamptz not null default now()
);

-- What people scan and recycle, by category and period (`weekly:2026-W47`, …).
create table read.guide_stats (
    period_key  text not null,
    category    text not null,
    scans       bigint not null default 0,
    recycles    bigint not null default 0,
    primary key (period_key, category)
);
