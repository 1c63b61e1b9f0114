"""Write a job's manifests next to its segment folders.

Media playlists go first and the master playlist and MPD last, each under a temporary name
renamed into place, so a reader never finds an entry point that names a missing file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from packager.dash import render_mpd
from packager.hls import render_master, render_media_playlist
from packager.model import DASH_MANIFEST, HLS_MASTER, HLS_MEDIA_PLAYLIST, Track, check_presentation


def write_text_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.partial")
    temp.write_text(text, encoding="utf-8", newline="\n")
    temp.replace(path)


def write_manifests(outdir: Path, video_tracks: Sequence[Track], audio: Track | None) -> None:
    """Write every track's `index.m3u8`, then `manifest.mpd` and `master.m3u8`, under `outdir`.

    The tracks should describe the segments already in `outdir/<track.id>/`; folders are
    created if missing, so renderings of hand-built tracks can be written too.
    """
    outdir = Path(outdir)
    check_presentation(video_tracks, audio)
    for track in [*video_tracks, *([audio] if audio else [])]:
        write_text_atomically(outdir / track.id / HLS_MEDIA_PLAYLIST, render_media_playlist(track))
    write_text_atomically(outdir / DASH_MANIFEST, render_mpd(video_tracks, audio))
    write_text_atomically(outdir / HLS_MASTER, render_master(video_tracks, audio))
