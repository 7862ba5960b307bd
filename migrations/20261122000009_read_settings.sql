-- User settings read model (GET /users/me/settings), owned by the profiles projector.
create table read.settings (
    user_id               uuid primary key,
    notification_enabled  boolean not null default true,
    language              text not null default 'ko',
    theme                 text not null default 'system',
    settings_sequence     bigint not null default 0,
    updated_at            timestamptz not null default now()
);
