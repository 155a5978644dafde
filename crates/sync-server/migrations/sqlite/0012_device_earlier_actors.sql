-- Enrolling a replica again (a new CA, a new code) makes a new device with a new Automerge
-- actor. When the enrolment proves, with the old device's token, that the replica was that
-- device of the same member, the old device is revoked and its actors are listed here for the
-- new one: changes the replica wrote before, still unsynced, are accepted from the new device
-- (PROTOCOL §2.4). A stolen actor id alone links nothing: the token is the proof.
CREATE TABLE device_earlier_actors (
    device_id TEXT NOT NULL REFERENCES devices (device_id),
    actor_id  TEXT NOT NULL,
    PRIMARY KEY (device_id, actor_id)
);
