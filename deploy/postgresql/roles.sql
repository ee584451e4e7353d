-- LeukoLens on PostgreSQL with least privilege (docs/security.md, "Who did what"):
--   leukolens_owner owns the database and its tables: it runs the migrations and the
--                   retention's pruning (python -m app.records migrate | prune), nothing else;
--   leukolens_app   is what the servers connect as: SELECT and INSERT on the records, no
--                   UPDATE, DELETE or TRUNCATE, and no right to create or alter anything
--                   (but marking an audit row not_answered, which a trigger lets through).
-- The tables' triggers refuse every update, TRUNCATE and young delete whoever asks; the split
-- keeps the servers from dropping those triggers.
--
-- Run once as a superuser, with the two passwords:
--   psql -v ON_ERROR_STOP=1 -v owner_password='...' -v app_password='...' -f roles.sql
-- then, connected as leukolens_owner (LEUKOLENS_DATABASE_URL=postgresql+psycopg://
-- leukolens_owner:...@host/leukolens):
--   python -m app.records migrate --grant-to leukolens_app
-- and serve with LEUKOLENS_DATABASE_URL=postgresql+psycopg://leukolens_app:...@host/leukolens.

CREATE ROLE leukolens_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE leukolens_app LOGIN PASSWORD :'app_password';
CREATE DATABASE leukolens OWNER leukolens_owner;
REVOKE ALL ON DATABASE leukolens FROM PUBLIC;
GRANT CONNECT ON DATABASE leukolens TO leukolens_app;

\connect leukolens
-- Nobody but the owner creates anything (PostgreSQL 15's default, said for older servers).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
ALTER SCHEMA public OWNER TO leukolens_owner;
GRANT USAGE ON SCHEMA public TO leukolens_app;
