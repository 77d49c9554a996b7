-- The user HAProxy's mysql-check signs in as (no rights, no password): the compose cluster.
CREATE USER IF NOT EXISTS 'haproxy'@'%';
