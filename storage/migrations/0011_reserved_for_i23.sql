-- Placeholder so that this branch's migrations have no gap while 0010 and
-- 0011 are taken by other branches of issue 23. Delete at merge (it does
-- nothing).
SELECT 1;
