-- PLACEHOLDER on the push branch only: 0014 is another branch's (s2s).
-- Numbers may have no gaps, so this empty step stands in for it until
-- the branches merge; the integrator drops this file then.
SELECT 1;
