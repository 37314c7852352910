"""Ray Data's side of the job's files: the datasource that reads input files as batchgen's blocks
(`ray_dataset`), and an output prefix's data files' names (`filename_provider`) and JSON Lines writer
(`json_lines_datasink`). Its row-level checkpoint is `batchgen.cluster.checkpoint`.

The blocks themselves are `batchgen.core.reading`'s (the same ones `batchgen validate` reads in-process),
the prefix's layout is `batchgen.core.prefix`'s, and the filesystems are `batchgen.core.storage`'s: this
module only hands them to Ray. Ray is imported when these are called, not when this module is.
"""

from __future__ import annotations

import fsspec

from batchgen.core import reading
from batchgen.core.blocks import json_lines
from batchgen.core.storage import InputSet, arrow_fs


READ_TASKS = 200  # Ray Data's own default parallelism for reads (`DataContext.read_op_min_num_blocks`)


def ray_dataset(fs: fsspec.AbstractFileSystem, inputs: InputSet, duplicate_places: frozenset = frozenset(),
                scan: bool = False):
    """A Ray Dataset over the input files (streamed: nothing is materialized on the driver), in blocks of
    up to `reading.ROWS_PER_BLOCK` consecutive records of one file: Ray does the file listing and
    scheduling, `reading.read_stream` makes the blocks (records or scan mode;
    `duplicate_places` as in `identity.row_ids`)."""
    import ray.data
    from ray.data.datasource import FileBasedDatasource

    class RecordsDatasource(FileBasedDatasource):
        def _read_stream(self, f, path):
            # Looked up on the module at each read: the benchmarks' worker hook wraps it (`benchmarks.standin`).
            yield from reading.read_stream(f, path, inputs.format, inputs.names, duplicate_places, scan,
                                           inputs.columns)

        def _open_input_source(self, filesystem, path, **open_args):
            # Raw bytes, always: `read_stream` decompresses, the same way `batchgen validate` reads.
            return filesystem.open_input_file(path)

    # No splitting of a file's blocks: Ray Data cuts a small input's blocks into pieces to reach its default
    # parallelism (200 blocks, `SetReadParallelismRule`) when there are fewer read tasks than that, and a
    # block of the read is the window the job's order works in (`batchgen.core.schedule`). A read task per
    # file up to READ_TASKS files; more files share tasks, each file still its own blocks.
    return ray.data.read_datasource(RecordsDatasource(inputs.files, filesystem=arrow_fs(fs)),
                                    override_num_blocks=max(1, min(len(inputs.files), READ_TASKS)))


def filename_provider(extension: str):
    """Ray Data's names for a prefix's data files, `part-<write id>-<task>.<ext>`: `.jsonl` for JSON Lines
    (Ray would say `.json`). The names depend on the extension only, not on the prefix."""
    from ray.data.datasource import FilenameProvider

    class PartNames(FilenameProvider):
        def get_filename_for_task(self, write_uuid: str, task_index: int) -> str:
            return f"part-{write_uuid}-{task_index:06d}.{extension}"

    return PartNames()


def json_lines_datasink(path: str, json_text: frozenset[str], **options):
    """Ray Data's block-based file datasink (`options`: its filesystem, filename provider, minimum rows per
    file) writing output blocks as JSON Lines with `batchgen.core.blocks.json_lines`. Not Ray's own
    `write_json`: it goes through pandas, which writes an integer column with nulls as floats (`16.0`) and
    would leave the passthrough values kept as JSON text (`json_text`) strings instead of the values a
    reader wrote. Ray's checkpoint commits its files like any file datasink's."""
    from ray.data.datasource import BlockBasedFileDatasink

    class JsonLines(BlockBasedFileDatasink):
        def write_block_to_file(self, block, file) -> None:
            file.write(json_lines(block.to_arrow(), json_text))

    return JsonLines(path, **options)
