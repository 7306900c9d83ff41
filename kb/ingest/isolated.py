"""Run one conversion (`ingest_bytes`) in a child process with a time budget and a memory cap, so a
hostile file cannot hold a server thread for minutes or leave the server process grown by a gigabyte.

The child is started fresh (spawn: no copy of the server's threads, locks or loaded index) and is
killed when the budget runs out.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection

from kb.ingest.base import IngestError

DEFAULT_SECONDS = 120.0
DEFAULT_MEMORY_BYTES = 3 * 2**30  # address space of the child; a 100 MB .docx converts well within it


def _convert(conn, data: bytes, filename: str, overrides: dict | None, max_bytes: int, memory_bytes: int) -> None:
    try:
        if memory_bytes:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        from kb.ingest import ingest_bytes

        conn.send(("ok", ingest_bytes(data, filename, overrides, max_bytes=max_bytes)))
    except IngestError as exc:
        conn.send(("refused", str(exc)))
    except MemoryError:
        conn.send(("refused", f"{filename}: converting it needs more than {memory_bytes // 2**20} MB of memory"))
    except Exception as exc:  # a bug in a reader: say so, the parent logs it
        conn.send(("bug", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


class ConversionStopped(IngestError):
    """The conversion ran past its time budget (or its process died) and was stopped."""


def ingest_bytes_isolated(data: bytes, filename: str, overrides: dict | None = None, *, max_bytes: int,
                          seconds: float = DEFAULT_SECONDS, memory_bytes: int = DEFAULT_MEMORY_BYTES):
    """Return `ingest_bytes(data, filename, overrides)` computed in a child process.

    Raises IngestError when the file is refused, ConversionStopped when the child runs past
    `seconds` or dies, RuntimeError for a bug in a reader.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_convert, args=(sender, data, filename, overrides, max_bytes, memory_bytes),
                              name="kb-convert", daemon=True)
    try:
        process.start()
        sender.close()
        # the process's sentinel too: a child that dies before it takes its end of the pipe leaves it open
        ready = multiprocessing.connection.wait([receiver, process.sentinel], seconds)
        try:
            if receiver in ready or receiver.poll(0):
                kind, value = receiver.recv()
            else:
                kind, value = ("died", None) if ready else ("stopped", None)
        except EOFError:  # the child died without a word (killed, out of memory)
            kind, value = "died", None
    finally:
        if process.is_alive():
            process.kill()
        process.join()
        receiver.close()
    if kind == "ok":
        return value
    if kind == "refused":
        raise IngestError(value)
    if kind == "bug":
        raise RuntimeError(f"converting {filename} failed: {value}")
    raise ConversionStopped(f"{filename}: converting it took longer than {seconds:g} seconds and was stopped"
                            if kind == "stopped" else f"{filename}: the conversion process ended unexpectedly")
