-- The write side resolves invite codes from its own table instead of the profiles projection.
-- A code is derived from the user id (command_api::domain::invite_code: the first 40 bits of the
-- SHA-256 of the id's 16 bytes, as 8 Crockford base32 characters). PostgreSQL computes the same
-- here, for every account old and new (a unit test pins one value both ways).
create function auth.invite_code(id uuid) returns text
language sql immutable strict parallel safe
return (
    select string_agg(substr('0123456789ABCDEFGHJKMNPQRSTVWXYZ', ((b.bits >> (5 * (7 - i))) & 31)::int + 1, 1), '' order by i)
    from (select ('x' || encode(substring(sha256(uuid_send(id)) from 1 for 5), 'hex'))::bit(40)::bigint as bits) b,
         generate_series(0, 7) i
);
alter table auth.users add column invite_code text generated always as (auth.invite_code(id)) stored;
create index users_invite_code_idx on auth.users (invite_code) where deleted_at is null;
