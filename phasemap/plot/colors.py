"""One fixed colour per label, keyed by label name (no plotting library needed).

A label keeps its colour in every figure, whatever else is on the map, so a reader who has
learnt that absolute negative mobility is blue can trust it everywhere. Labels that name the
same physics in both lenses share a colour (``heat_engine``, ``refrigerator``; ``heater`` is
the machine-lens name of ``joule_heating``). Colours are Paul Tol's colour-blind-safe
"bright" and "light" sets plus greys.
"""

from __future__ import annotations

from ..regimes import LENSES, MACHINE_LABELS, REGIME_LABELS

#: label name -> hex colour. Covers every label of :data:`phasemap.regimes.LENSES`.
LABEL_COLORS: dict[str, str] = {
    # the paper's lens
    "equilibrium": "#BBBBBB",
    "reversible": "#000000",
    "anomalous_thermodiffusion": "#AA3377",
    "absolute_negative_mobility": "#4477AA",
    "reverse_heat_transport": "#66CCEE",
    "heat_engine": "#EE6677",
    "refrigerator": "#228833",
    "joule_heating": "#CCBB44",
    "conventional": "#DDDDDD",
    # the machine lens (heat_engine and refrigerator above)
    "idle": "#000000",
    "conductor": "#882255",
    "heater": "#CCBB44",
    "accelerator": "#BBCCEE",
    # both lenses: inputs or outputs not finite
    "undefined": "#FFFFFF",
}

#: label name -> the words a legend shows, with the paper's abbreviation where it has one.
LABEL_TEXT: dict[str, str] = {
    "undefined": "undefined (input or output not finite)",
    "equilibrium": "equilibrium",
    "reversible": "reversible",
    "anomalous_thermodiffusion": "anomalous thermodiffusion (AT)",
    "absolute_negative_mobility": "absolute negative mobility (ANM)",
    "reverse_heat_transport": "reverse heat transport (RHT)",
    "heat_engine": "heat engine",
    "refrigerator": "refrigerator",
    "joule_heating": "Joule heating",
    "conventional": "conventional",
    "idle": "idle",
    "conductor": "conductor",
    "heater": "heater",
    "accelerator": "accelerator",
}

#: Colours for several lines in one panel (Paul Tol's "vibrant" set, grey last).
LINE_COLORS: tuple[str, ...] = (
    "#0077BB", "#CC3311", "#009988", "#EE7733", "#EE3377", "#33BBEE", "#000000",
)

#: Colour of a lone line (one variable, no ``by`` dimension).
LINE_COLOR = "#222222"


def color_of(label: str) -> str:
    """The fixed colour of ``label`` (a name from either lens)."""
    try:
        return LABEL_COLORS[label]
    except KeyError:
        known = ", ".join(sorted(LABEL_COLORS))
        raise KeyError(f"no colour for label {label!r}; known labels: {known}") from None


def label_text(label: str) -> str:
    """The legend text of ``label``: words, not identifiers (``"Joule heating"``)."""
    return LABEL_TEXT.get(label, label.replace("_", " "))


def palette(lens: str = "regime") -> list[str]:
    """Colours of ``lens`` in the order of its integer codes (``palette(lens)[code]``)."""
    if lens not in LENSES:
        from ..errors import ParameterError

        raise ParameterError("lens", lens, f"one of {', '.join(LENSES)}")
    return [LABEL_COLORS[name] for name in LENSES[lens]]


def _check() -> None:
    for labels in (REGIME_LABELS, MACHINE_LABELS):
        missing = (set(labels) - set(LABEL_COLORS)) | (set(labels) - set(LABEL_TEXT))
        if missing:  # pragma: no cover - a new label without a colour is a bug here
            raise RuntimeError(f"labels without a colour or text: {sorted(missing)}")


_check()
