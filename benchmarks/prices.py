"""Managed transcoding services' list prices, to compare the farm's cost with (bench_cost)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ManagedPrice:
    """A managed transcoding service's list price per output minute, by resolution class."""

    service: str
    tier: str
    sd: float  # below 1280x720
    hd: float  # 1280x720 up to 1920x1080
    uhd: float  # above 1920x1080
    as_of: str
    source: str
    verified: bool  # False: recalled, not read from the page; check before quoting

    def per_minute(self, height: int) -> float:
        """Price of one output minute at this output height (short side)."""
        return self.sd if height < 720 else self.hd if height <= 1080 else self.uhd


# Google Cloud "Transcoder API pricing" page (https://cloud.google.com/transcoder/pricing),
# read in 2025: per output minute by output resolution, any codec, no free tier.
GOOGLE_TRANSCODER = ManagedPrice(
    service="Google Cloud Transcoder API",
    tier="standard",
    sd=0.015,
    hd=0.030,
    uhd=0.060,
    as_of="2025",
    source="https://cloud.google.com/transcoder/pricing",
    verified=True,
)
# AWS "AWS Elemental MediaConvert Pricing" page (https://aws.amazon.com/mediaconvert/pricing/),
# us-east-1, on-demand Professional tier (HEVC output needs it), single-pass, <= 30 fps,
# first volume band. The page renders its rate table in the browser and has priced by
# "normalized minutes" with volume discounts since September 2024. These figures were NOT
# read from the page (its tables did not come through): they are placeholders of the
# right order of magnitude and must be replaced by the page's current rates before use.
MEDIACONVERT_PRO_HEVC = ManagedPrice(
    service="AWS Elemental MediaConvert",
    tier="Professional, HEVC, single-pass, <= 30 fps",
    sd=0.0120,
    hd=0.0240,
    uhd=0.0480,
    as_of="2024 (unverified)",
    source="https://aws.amazon.com/mediaconvert/pricing/",
    verified=False,
)
MANAGED_PRICES = (MEDIACONVERT_PRO_HEVC, GOOGLE_TRANSCODER)
