"""What `factory preview --run` reads back from its temporary database: a seed's samples and
the drop rows of its roles' outputs."""
from __future__ import annotations


def seed_samples(con, job: str, seed_index: int) -> list[str]:
    """The sample ids the seed gave."""
    return [s for (s,) in con.execute("SELECT sample_id FROM samples WHERE job = ? AND seed_index = ?",
                                      [job, seed_index]).fetchall()]


def seed_drops(con, job: str, seed_index: int) -> list[dict]:
    """{role, reason} of each output of the seed that was dropped, in the order written."""
    return [{"role": r, "reason": why} for r, why in con.execute(
        """SELECT d.role, d.reason FROM drops d JOIN seeds s USING (seed_id)
           WHERE d.job = ? AND s.seed_index = ? ORDER BY d.drop_id""", [job, seed_index]).fetchall()]
