-- A realistic FAS-like database for benchmarks, sized by psql variable :people
-- (about 1.5 kB on disk per person with memberships, sessions and audit rows; 200000 ~ 300 MB).
-- Text is a mix of dictionary words, names, random tokens and Unicode, so compression ratios
-- resemble real data rather than pgbench's blank filler.
\set ON_ERROR_STOP on
DO $$ BEGIN CREATE ROLE fas2 LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
ALTER DATABASE :"DBNAME" OWNER TO fas2;
SET ROLE fas2;

CREATE TABLE words (i int PRIMARY KEY, w text NOT NULL);
INSERT INTO words
SELECT i, (ARRAY['fedora','koji','bodhi','package','build','update','release','mirror','review','sponsor',
                  'packager','infrastructure','staging','ansible','server','client','python','kernel','rawhide',
                  'branch','commit','review','approve','karma','testing','stable','obsolete','retire','orphan',
                  'maintainer','Zoë','Ñandú','日本語','Ελληνικά','naïve','café','São','Łódź','Müller','Ødegaard'])[1 + (i % 40)]
       || CASE WHEN i % 7 = 0 THEN '' ELSE (i % 97)::text END
FROM generate_series(0, 9999) AS i;

CREATE TABLE people (
    id          serial PRIMARY KEY,
    username    text NOT NULL UNIQUE,
    human_name  text NOT NULL,
    email       text NOT NULL UNIQUE,
    password    text NOT NULL,
    ssh_key     text,
    gpg_keyid   text,
    telephone   text,
    ircnick     text,
    locale      text NOT NULL DEFAULT 'en_US',
    timezone    text NOT NULL DEFAULT 'UTC',
    comments    text,
    prefs       jsonb,
    avatar      bytea,
    status      text NOT NULL DEFAULT 'active',
    created     timestamptz NOT NULL
);
INSERT INTO people (username, human_name, email, password, ssh_key, gpg_keyid, telephone, ircnick,
                    comments, prefs, avatar, created)
SELECT 'user' || i,
       initcap((SELECT w FROM words WHERE words.i = (p.i * 7) % 10000)) || ' ' || initcap((SELECT w FROM words WHERE words.i = (p.i * 13) % 10000)),
       'user' || i || '@' || (ARRAY['fedoraproject.org','gmail.com','redhat.com','example.org'])[1 + i % 4],
       '$6$rounds=656000$' || substr(md5(i::text), 1, 16) || '$' || md5('pw' || i) || md5('x' || i) || substr(md5('y' || i), 1, 22),
       CASE WHEN i % 3 <> 0 THEN 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI' || encode(decode(md5('k' || i) || md5('l' || i), 'hex'), 'base64') || ' user' || i || '@laptop' END,
       CASE WHEN i % 4 = 0 THEN upper(substr(md5('g' || i), 1, 16)) END,
       CASE WHEN i % 5 = 0 THEN '+1-555-' || lpad((i % 10000)::text, 4, '0') END,
       CASE WHEN i % 2 = 0 THEN 'nick' || i END,
       CASE i % 6
         WHEN 0 THEN NULL
         WHEN 1 THEN (SELECT string_agg(w, ' ') FROM words WHERE words.i BETWEEN (p.i * 31) % 9980 AND (p.i * 31) % 9980 + 12)
         WHEN 2 THEN E'line one\nline two\twith tab \\ and backslash'
         WHEN 3 THEN 'Bugzilla ' || i || ': ' || (SELECT string_agg(w, ' ') FROM words WHERE words.i BETWEEN (p.i * 17) % 9990 AND (p.i * 17) % 9990 + 6)
         ELSE 'sponsored by user' || (i / 3 + 1) END,
       jsonb_build_object('theme', (ARRAY['dark','light'])[1 + i % 2], 'notify', i % 3 = 0, 'lang', (ARRAY['en','cs','de','ja'])[1 + i % 4], 'seen', i * 17),
       CASE WHEN i % 10 = 0 THEN decode(md5('a' || i) || md5('b' || i) || md5('c' || i) || md5('d' || i), 'hex') END,
       timestamptz '2008-01-01' + (i * interval '17 minutes')
FROM generate_series(1, :people) AS p(i);

CREATE TABLE groups (
    id          serial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    display_name text NOT NULL,
    owner_username text NOT NULL REFERENCES people (username),
    url         text
);
INSERT INTO groups (name, display_name, owner_username, url)
SELECT 'group' || g, 'Group ' || initcap((SELECT w FROM words WHERE words.i = g % 10000)), 'user' || (1 + g % :people), 'https://fedoraproject.org/wiki/Group' || g
FROM generate_series(1, greatest(:people / 100, 10)) AS g;

CREATE TABLE memberships (
    person_username text NOT NULL REFERENCES people (username),
    group_id    integer NOT NULL REFERENCES groups (id),
    role        text NOT NULL DEFAULT 'user',
    approved    timestamptz,
    PRIMARY KEY (person_username, group_id)
);
INSERT INTO memberships
SELECT 'user' || i, 1 + ((i * k) % greatest(:people / 100, 10)),
       (ARRAY['user','user','user','sponsor','administrator'])[1 + (i + k) % 5],
       timestamptz '2010-01-01' + (i * interval '11 minutes')
FROM generate_series(1, :people) AS i, generate_series(1, 3) AS k
ON CONFLICT DO NOTHING;

CREATE TABLE sessions (
    id          text PRIMARY KEY,
    username    text NOT NULL,
    data        text,
    expires     timestamptz NOT NULL
);
INSERT INTO sessions
SELECT md5('session' || i), 'user' || (1 + i % :people), encode(decode(md5('s' || i) || md5('t' || i), 'hex'), 'base64'), now() + interval '1 day'
FROM generate_series(1, :people / 2) AS i;

CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL,
    actor       text NOT NULL,
    action      text NOT NULL,
    details     jsonb
);
INSERT INTO audit_log (at, actor, action, details)
SELECT timestamptz '2015-01-01' + (i * interval '3 minutes'),
       'user' || (1 + (i * 7) % :people),
       (ARRAY['login','logout','group.join','group.leave','password.change','sshkey.add'])[1 + i % 6],
       jsonb_build_object('ip', '10.' || (i % 256) || '.' || ((i / 256) % 256) || '.' || (i % 7), 'agent', 'python-fedora/' || (i % 20))
FROM generate_series(1, :people * 2) AS i;

RESET ROLE;
ANALYZE;
