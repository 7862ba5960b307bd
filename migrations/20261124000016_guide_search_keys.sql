-- Korean-aware guide search (platform::search): keys in plain ASCII, derived by projection.guide
-- from each item's names and keywords, so trigram matching works the same under any database
-- locale, the C locale included (pg_trgm only counts characters the locale calls letters).
-- Rows written before this migration have empty keys until projection.guide writes them again:
-- `ecoctl projections rebuild guide` (shipped items are re-saved by the next `ecoctl seed`).
alter table read.guide_items
    drop column search_text,
    add column search_korean text not null default '',
    add column search_english text not null default '',
    add column search_initials text not null default '',
    add column exact_names text[] not null default '{}',
    add column exact_terms text[] not null default '{}';
create index guide_items_korean_trgm_idx on read.guide_items using gin (search_korean gin_trgm_ops);
create index guide_items_english_trgm_idx on read.guide_items using gin (search_english gin_trgm_ops);
