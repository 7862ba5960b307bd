-- Avatars (issue #18): the avatar worker's record of each person's current uploaded avatar, so
-- a new upload, a cleared or replaced avatar_url and an account deletion remove the files that
-- are no longer shown. The files live in object storage (STORAGE_URL) under random ids.
create schema if not exists avatars;
create table avatars.current (
    user_id      uuid primary key,
    -- The upload whose renditions the profile shows; null when none (cleared or replaced).
    upload_id    uuid,
    -- The avatar_url recorded for it.
    avatar_url   text,
    -- When the shown upload was made, and when its user.profile_updated was recorded: an older
    -- upload arriving late never replaces a newer one, an older profile change never clears it.
    uploaded_at  timestamptz,
    set_at       timestamptz,
    -- The person was deleted: their files are gone and later uploads are dropped.
    forgotten    boolean not null default false
);
