-- Re-indexing a request removes its timeline row by item: give that lookup an index.
CREATE INDEX timeline_ix_item ON timeline_ix (item_kind, item_id);
