"""An output prefix's row-level checkpoint in Ray Data (`checkpoint_config`): Ray's writer commits each
data file with a checkpoint file of its rows' ids, in `_checkpoint/`; a resumed job skips the input
records those ids name.

Ray's own loader reads every committed id into one sorted NumPy string array that its filter actors hold
(a million 12-character ids: 48 MB; a hundred million: 4.8 GB). Here the loader (`CommittedPositions`, on
the driver, after Ray has cleaned up any half-done commit) finds the committed ids' records by the input
scan's spilled digests (`identity.DuplicateFinder.committed`) and hands the filter (`PositionFilter`) one
bit per input record. Ray Data's hooks for this are its `checkpoint_manager_cls` and
`checkpoint_filter_cls`; these classes live at module level so that Ray pickles them by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import ray
from ray.data.checkpoint import CheckpointConfig
from ray.data.checkpoint.checkpoint_filter import CheckpointFilter, IdColumnCheckpointManager

from batchgen.core.identity import ROW_KEY
from batchgen.core.positions import Positions, PositionSet
from batchgen.core.prefix import OutputPrefix
from batchgen.core.reading import INDEX, SOURCE

# checkpoint path -> (the job's prefix, its positions, the finder of committed records): the driver's
# state for the loader, which Ray builds from the config alone.
_JOBS: dict[str, tuple[OutputPrefix, Positions, Callable[[Iterator[list[str]], Positions], PositionSet]]] = {}


def checkpoint_config(prefix: OutputPrefix, positions: Positions,
                      committed: Callable[[Iterator[list[str]], Positions], PositionSet]) -> CheckpointConfig:
    """Ray Data's row-level checkpoint for this prefix, in its `_checkpoint/` folder, keyed by the output's
    `id` column. `committed(id lists, positions)`: the positions of the records whose rows those ids are
    (`DuplicateFinder.committed`, with the input scan's digests)."""
    config = CheckpointConfig(
        id_column=ROW_KEY,
        checkpoint_path=prefix.checkpoint_path,
        override_filesystem=prefix.arrow_fs(),
        # Kept after success too: it is what makes a rerun of a finished job a no-op instead of a redo.
        delete_checkpoint_on_success=False,
        checkpoint_manager_cls=CommittedPositions,
        checkpoint_filter_cls=PositionFilter,
    )
    # Filtering committed records is cheap; Ray's default pool of up to 10 filter actors would take CPU
    # slots the readers and replicas need.
    config.checkpoint_actor_pool_max_size = 1
    _JOBS[config.checkpoint_path] = (prefix, positions, committed)
    return config


class CommittedPositions(IdColumnCheckpointManager):
    """Ray's loader, run on the driver when a pass starts: after cleaning up half-done commits (Ray's own
    step), the committed records as a bit set of positions in the object store, or (None, 0) when none."""

    def load_checkpoint(self, data_file_dir=None, data_file_filesystem=None):
        if data_file_dir is not None:
            self._clean_pending_checkpoints(data_file_dir, data_file_filesystem)
        prefix, positions, committed = _JOBS[self.checkpoint_path]
        files = prefix.checkpoint_files()
        if not files:
            return None, 0
        done = committed((prefix.committed_ids(name).to_pylist() for name in files), positions)
        return ray.put((positions, done.bits)), done.bits.nbytes


class PositionFilter(CheckpointFilter):
    """Drops the input rows whose position the loader's bit set holds (rows carry their file and number:
    `batchgen.core.reading`)."""

    def __init__(self, checkpoint_config: CheckpointConfig, checkpoint_ref):
        super().__init__(checkpoint_config, checkpoint_ref)
        self.positions, bits = ray.get(checkpoint_ref)
        self.done = PositionSet(self.positions.size, bits)

    def filter_rows_for_block(self, block):
        if not block.num_rows:
            return block
        return block.filter(~self.done.contains(self.positions.of(block.column(SOURCE), block.column(INDEX))))
