-- Places: public bins and recycling centers, and users' saved places.
create extension if not exists cube;
create extension if not exists earthdistance;

-- Command side: the places that exist now, with their position, written in the transaction of
-- the admin command (or seed) that records the event (their content hash is in
-- app.guide_content, kind `place`). Recycles are judged against it
-- ("honest recycling"), so a bin added a second ago already counts.
create table app.places (
    place_id   uuid primary key,
    kind       text not null check (kind in ('bin', 'center')),
    latitude   double precision not null,
    longitude  double precision not null,
    removed    boolean not null default false
);
create index app_places_earth_idx on app.places using gist (ll_to_earth(latitude, longitude)) where not removed;

-- Command side: each user's saved places (the list `user.places_changed` carries).
create table app.saved_places (
    saved_place_id  uuid primary key,
    user_id         uuid not null,
    label           text not null,
    latitude        double precision not null,
    longitude       double precision not null,
    address         text,
    is_default      boolean not null default false,
    created_at      timestamptz not null default now()
);
create index app_saved_places_user_idx on app.saved_places (user_id, created_at);
create unique index app_saved_places_one_default on app.saved_places (user_id) where is_default;

-- Read side, owned by projection.places.
create table read.places (
    place_id       uuid primary key,
    kind           text not null default 'bin',
    name           text not null default '',
    address        text not null default '',
    latitude       double precision not null default 0,
    longitude      double precision not null default 0,
    categories     text[] not null default '{}',
    opening_hours  text,
    phone          text,
    removed        boolean not null default false,
    sequence       bigint not null default 0,
    updated_at     timestamptz not null default now()
);
create index places_earth_idx on read.places using gist (ll_to_earth(latitude, longitude)) where not removed;

create table read.saved_places (
    saved_place_id  uuid primary key,
    user_id         uuid not null,
    label           text not null,
    latitude        double precision not null,
    longitude       double precision not null,
    address         text,
    is_default      boolean not null,
    position        integer not null
);
create index saved_places_user_idx on read.saved_places (user_id, position);

-- The sequence of the list each user's rows came from (newest list wins).
create table read.saved_place_lists (
    user_id   uuid primary key,
    sequence  bigint not null
);

create table read.places_tombstones (
    user_id       uuid primary key,
    forgotten_at  timestamptz not null default now()
);
