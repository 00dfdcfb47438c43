"""Configuration of the web service (``deepsynth serve``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from deepsynth.config.dataset import ray_address_problem
from deepsynth.config.spec import option

ROLES = ("cpu", "gpu", "all")
DEFAULT_PORTS = {"cpu": 5000, "all": 5000, "gpu": 5001}


@dataclass
class ServerConfig:
    role: str = option("all", choices=ROLES, help="cpu: generation; gpu: training and "
                       "evaluation; all: both in one process")
    host: str = option("127.0.0.1", help="address to bind; any other than loopback needs "
                       "DEEPSYNTH_API_TOKEN")
    port: int | None = option(None, min=1, max=65535, help="port (default 5000 for cpu and "
                              "all, 5001 for gpu)")
    data_root: str | None = option(None, help="data root (default $DEEPSYNTH_DATA_ROOT or "
                                   "./data)")
    auto_resume: bool = option(False, help="resume interrupted jobs at start")
    generate_capacity: int = option(2, min=0, max=64, help="generation and dataset upload "
                                    "jobs at once (0: jobs only queue)")
    accelerator_capacity: int = option(1, min=0, max=1, help="training, evaluation and model "
                                       "upload jobs at once: one (they share the device), "
                                       "or 0 so that jobs only queue")
    threads: int = option(16, min=4, max=256, help="request threads")
    max_upload_mb: int = option(200, min=1, max=100_000, help="largest upload")
    allow_remote_code: bool = option(False, help="allow models that need trust_remote_code")
    gpu_service_url: str = option("http://127.0.0.1:5001", help="where the gpu service is, "
                                  "for messages from the cpu service")
    cpu_service_url: str = option("http://127.0.0.1:5000", help="where the cpu service is, "
                                  "for messages from the gpu service")
    ray_address: str | None = option(None, help="the Ray cluster that generation jobs asking "
                                     "for engine ray run on: HOST:PORT, ray://HOST:PORT or "
                                     "auto (default: $RAY_ADDRESS, else Ray started in this "
                                     "process)", check=ray_address_problem, max_chars=300)
    api_token: str | None = option(None, cli=False, secret=True,
                                   help="bearer token (from DEEPSYNTH_API_TOKEN)")

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.role]

    @classmethod
    def token_from_environment(cls) -> str | None:
        return os.environ.get("DEEPSYNTH_API_TOKEN") or None
