-- Catch-up reads the log from the documents in a device's scope that changed after its cursor,
-- not from every change in the county after it: these indexes answer "documents of these grids
-- (or of this department) changed after seq N" from the index alone.
CREATE INDEX documents_by_grid_seq ON documents (grid_id, last_seq);
CREATE INDEX documents_by_department_seq ON documents (department, last_seq);
DROP INDEX documents_by_grid;
DROP INDEX documents_by_department;
