-- A push (and a typed feed) reads the changes of one record type after its cursor. With only
-- the `seq` index, a push that has caught up walked every later version of every other type
-- on each round, and six pushes every ten seconds made that most of the database's work while
-- a large sync was storing (issue 5's instances benchmark). This index makes the read a range.
CREATE INDEX record_versions_type_seq ON record_versions (record_type, seq);

-- Which keys a target already accepted (an update is sent as `u`, a first send as `i`): the
-- exact lookup, instead of the target's whole receipt history through the primary key.
CREATE INDEX push_receipts_accepted ON push_receipts (target, record_type, key) WHERE accepted;
