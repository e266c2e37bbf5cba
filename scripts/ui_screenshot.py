"""The README's picture of the operator's page: the twin picking the cube from its cameras, mid-episode, with the
operator holding a take-over key, in a real headless Chromium.

    python scripts/ui_screenshot.py --out docs/operator_page.png [--classifier out/pixels/goal_seed0/classifier.pt]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import robotrl  # noqa: F401  registers the envs, headless GL
from robotrl.cli import task_kwargs
from robotrl.runtime.actor import make_actor_env
from robotrl.tasks.experts import make_expert
from robotrl.ui import CHROMIUM, CHROMIUM_ARGS
from robotrl.ui.server import UiServer
from robotrl.ui.session import TwinSession


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/operator_page.png"))
    parser.add_argument("--env", default="robotrl/ArmPickCube-v0")
    parser.add_argument("--config", default="arm_pick_cube_pixels", help="task config (default: the pixel task)")
    parser.add_argument("--classifier", help="a reward classifier (robotrl train classifier) to show its probability")
    parser.add_argument("--ticks", type=int, default=25, help="control ticks of the policy before the take-over")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    kwargs = task_kwargs(args.env, args.config)
    with TemporaryDirectory() as tmp:
        session = TwinSession(lambda: make_actor_env(args.env, kwargs, "none", 0, classifier=args.classifier),
                              make_expert, Path(tmp) / "episodes.zarr", args.env).start()
        server = UiServer(session.console, session.frames, port=0).start()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1360, "height": 860})
                page.goto(server.url)
                while session.console.controller is None:
                    time.sleep(0.05)
                page.click("#resume")
                start = session.ticks
                while session.ticks < start + args.ticks:
                    time.sleep(0.05)
                page.keyboard.down("KeyA")  # the operator nudges the arm left
                start = session.ticks
                while session.ticks < start + 4:
                    time.sleep(0.05)
                time.sleep(0.3)  # the page draws the last status
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out), full_page=True)
                page.keyboard.up("KeyA")
                browser.close()
        finally:
            server.stop()
            session.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
