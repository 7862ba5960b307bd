-- `GET /scans/{id}/guidance` finds a user's scan by its id among their activities.
create index activities_scan_idx on read.activities (user_id, (metadata->>'scan_id')) where action = 'scan';
