"""A synthetic shop for demos, tests and benchmarks, deterministic from a seed.

Items are drawn products: the category fixes the silhouette, the style fixes colour and pattern.
Users prefer some colours and patterns (visual attributes that the item id and category do
not carry), plus some categories and price levels. Clicks follow those preferences, so a
content embedding of the image helps, most of all for items that appear late (cold items).
Titles mention the colour only for some items, so text alone is a weaker signal than the image.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from ..fields import EVENT_TYPE_COLUMN
from .layout import IMAGES_DIR, Dataset, DatasetMeta, save_dataset

CATEGORIES = ("shirt", "mug", "lamp", "bag", "shoe", "vase", "clock", "hat")
SHAPES = ("tshirt", "mug", "triangle", "bag", "ellipse", "diamond", "circle", "hat")  # per category
COLOURS = {
    "red": (200, 40, 40), "orange": (235, 140, 30), "yellow": (225, 205, 40), "green": (50, 160, 70),
    "teal": (30, 150, 150), "blue": (40, 80, 200), "purple": (130, 60, 170), "black": (35, 35, 35),
}
PATTERNS = ("solid", "stripes", "dots", "checks")
MATERIALS = ("cotton", "ceramic", "metal", "leather", "glass", "wooden", "linen", "canvas")
ADJECTIVES = ("classic", "modern", "vintage", "minimal", "cosy", "bold", "urban", "premium")
REGIONS = ("north", "south", "east", "west")
AGE_BUCKETS = ("18-24", "25-34", "35-44", "45-54", "55+")
START = pd.Timestamp("2026-01-05", tz="UTC")
DEVICES = ("mobile", "desktop", "tablet")
# Click-logit shifts of the optional context columns: evenings click more, nights less; phones
# more than desktops. Nothing else a model sees carries them (it never reads the timestamp).
HOUR_EFFECT = np.array([-1.5] * 6 + [0.0] * 12 + [1.2] * 6)
DEVICE_EFFECT = np.array([0.6, -0.6, 0.0])


def _polygon(shape: str, s: int) -> list[tuple[float, float]] | None:
    """Outline of a category's silhouette on an s x s canvas (None = drawn as ellipse)."""
    if shape == "tshirt":
        pts = [(.3, .15), (.7, .15), (.95, .35), (.82, .48), (.72, .4), (.72, .9), (.28, .9), (.28, .4),
               (.18, .48), (.05, .35)]
    elif shape == "mug":
        pts = [(.2, .2), (.7, .2), (.7, .35), (.88, .35), (.88, .65), (.7, .65), (.7, .85), (.2, .85)]
    elif shape == "triangle":
        pts = [(.5, .1), (.9, .85), (.1, .85)]
    elif shape == "bag":
        pts = [(.15, .35), (.35, .35), (.38, .15), (.62, .15), (.65, .35), (.85, .35), (.8, .9), (.2, .9)]
    elif shape == "diamond":
        pts = [(.5, .08), (.85, .5), (.5, .92), (.15, .5)]
    elif shape == "hat":
        pts = [(.3, .25), (.7, .25), (.72, .65), (.95, .7), (.95, .8), (.05, .8), (.05, .7), (.28, .65)]
    else:
        return None
    return [(x * s, y * s) for x, y in pts]


def render_item_image(category: int, colour: str, pattern: str, rng: np.random.Generator,
                      size: int = 64) -> Image.Image:
    """Draw one product: silhouette by category, fill colour and pattern by style."""
    scale = 4  # draw large and downsample for anti-aliased edges
    s = size * scale
    tint = rng.integers(235, 256, 3)
    img = Image.new("RGB", (s, s), tuple(int(t) for t in tint))
    mask = Image.new("L", (s, s), 0)
    draw_mask = ImageDraw.Draw(mask)
    shape = SHAPES[category]
    poly = _polygon(shape, s)
    if poly is None:
        box = (0.12 * s, 0.22 * s, 0.88 * s, 0.78 * s) if shape == "ellipse" else (0.12 * s,) * 2 + (0.88 * s,) * 2
        draw_mask.ellipse(box, fill=255)
    else:
        draw_mask.polygon(poly, fill=255)

    base = np.array(COLOURS[colour], dtype=float) * rng.uniform(0.85, 1.15)
    fill = Image.new("RGB", (s, s), tuple(int(c) for c in np.clip(base, 0, 255)))
    # Patterns are a darker shade, except on black where a darker shade would not show.
    dark = (120, 120, 120) if colour == "black" else tuple(int(c * 0.45) for c in np.clip(base, 0, 255))
    draw_fill = ImageDraw.Draw(fill)
    step = int(s / rng.uniform(5, 8))
    if pattern == "stripes":
        for x in range(-s, s, step):
            draw_fill.line([(x, 0), (x + s, s)], fill=dark, width=step // 3)
    elif pattern == "dots":
        r = step // 5
        for y in range(step // 2, s, step):
            for x in range(step // 2, s, step):
                draw_fill.ellipse((x - r, y - r, x + r, y + r), fill=dark)
    elif pattern == "checks":
        for y in range(0, s, step):
            for x in range(0, s, step):
                if (x // step + y // step) % 2:
                    draw_fill.rectangle((x, y, x + step, y + step), fill=dark)
    img.paste(fill, (0, 0), mask)
    angle = float(rng.uniform(-12, 12))
    img = img.rotate(angle, fillcolor=tuple(int(t) for t in tint))
    return img.resize((size, size), Image.LANCZOS)


def _colour_variants(n_items: int, share: float, seed: int) -> np.ndarray:
    """product[i]: the item whose design item i shares (itself, or an earlier item it is a colour
    variant of). Drawn from its own generator so that share=0 reproduces the older shop exactly."""
    rng = np.random.default_rng([seed, 7])
    product = np.arange(n_items)
    for i in np.flatnonzero(rng.random(n_items) < share):
        if i > 0:
            product[i] = product[rng.integers(0, i)]
    return product


def _make_items(n_items: int, rng: np.random.Generator, weeks: int, variant_share: float,
                seed: int, arrival_span: float = 0.9) -> pd.DataFrame:
    n_brands = max(10, int(math.sqrt(n_items)))
    category = rng.integers(0, len(CATEGORIES), n_items)
    colour = rng.integers(0, len(COLOURS), n_items)
    pattern = rng.integers(0, len(PATTERNS), n_items)
    brand = rng.integers(0, n_brands, n_items)
    material = rng.integers(0, len(MATERIALS), n_items)
    adjective = rng.integers(0, len(ADJECTIVES), n_items)
    # A colour variant copies its product's design (everything but the colour), as a fashion
    # catalogue lists one product in several colours; same-product search is measured on it.
    product = _colour_variants(n_items, variant_share, seed)
    category, pattern, brand, material, adjective = (
        a[product] for a in (category, pattern, brand, material, adjective))
    price = np.round(np.exp(rng.normal(3.0 + 0.15 * category, 0.5)), 2)
    # 40% of the catalogue exists from day one; the rest arrives during the first arrival_span of the log.
    arrival_days = np.where(rng.random(n_items) < 0.4, 0.0, rng.uniform(0, weeks * 7 * arrival_span, n_items))
    colour_names = list(COLOURS)
    says_colour = rng.random(n_items) < 0.35
    titles = [
        f"{'%s ' % colour_names[c] if sc else ''}{ADJECTIVES[a]} {MATERIALS[m]} {CATEGORIES[k]} by brand{b:03d}"
        for c, sc, a, m, k, b in zip(colour, says_colour, adjective, material, category, brand)
    ]
    return pd.DataFrame({
        "item_id": np.arange(1, n_items + 1, dtype=np.int64),
        "title": titles,
        "first_seen": START + pd.to_timedelta(arrival_days, unit="D"),
        "category": [CATEGORIES[k] for k in category],
        "brand": [f"brand{b:03d}" for b in brand],
        "price": price.astype("float64"),
        # Visual attributes: kept for analysis and tests; not model features.
        "colour": [colour_names[c] for c in colour],
        "pattern": [PATTERNS[p] for p in pattern],
        "product_id": product.astype(np.int64) + 1,
    })


def _make_users(n_users: int, rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    region = rng.integers(0, len(REGIONS), n_users)
    prefs = {
        # Sharp preferences over visual attributes, with a regional flavour.
        "colour": rng.normal(0, 1.6, (n_users, len(COLOURS))) + np.eye(len(COLOURS))[region * 2] * 1.0,
        "pattern": rng.normal(0, 1.2, (n_users, len(PATTERNS))),
        "category": rng.normal(0, 0.6, (n_users, len(CATEGORIES))),
        "price": rng.normal(0, 0.4, n_users),
        "activity": rng.lognormal(0, 0.5, n_users),
    }
    users = pd.DataFrame({
        "user_id": np.arange(1, n_users + 1, dtype=np.int64),
        "age_bucket": [AGE_BUCKETS[a] for a in rng.integers(0, len(AGE_BUCKETS), n_users)],
        "gender": rng.choice(["F", "M"], n_users),
        "region": [REGIONS[r] for r in region],
    })
    return users, prefs


def _context_columns(times: pd.DatetimeIndex, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The log's context columns (hour_of_day from the time, device drawn from a generator of its
    own, so the other draws stay as without them) and their effect on the click logit."""
    hour = np.asarray(times.hour, dtype=np.int64)
    device = np.random.default_rng([seed, 11]).integers(0, len(DEVICES), len(times))
    columns = {"hour_of_day": hour, "device": np.array(DEVICES, dtype=object)[device]}
    return columns, HOUR_EFFECT[hour] + DEVICE_EFFECT[device]


def _event_types(log: pd.DataFrame, items: pd.DataFrame, prefs: dict[str, np.ndarray], seed: int) -> np.ndarray:
    """The log's event_type: "impression" for a non-click, and for a click "purchase" or "click".

    A click becomes a purchase more often where the user likes the item's category
    (p = sigmoid(3 * preference - 1)), so a purchase sequence says more about a user's categories
    than the clicks do. Drawn from a generator of its own: the other draws stay as without it."""
    category = pd.Categorical(items.set_index("item_id").loc[log["item_id"], "category"], categories=CATEGORIES).codes
    preference = prefs["category"][log["user_id"].to_numpy() - 1, category]
    buy = np.random.default_rng([seed, 13]).random(len(log)) < 1 / (1 + np.exp(1 - 3 * preference))
    clicked = log["label"].to_numpy() == 1
    return np.where(clicked, np.where(buy, "purchase", "click"), "impression").astype(object)


def _make_log(items: pd.DataFrame, prefs: dict[str, np.ndarray], impressions_per_user: int,
              weeks: int, rng: np.random.Generator, context_seed: int | None = None) -> pd.DataFrame:
    n_users = len(prefs["price"])
    per_user = np.maximum(1, rng.poisson(impressions_per_user * prefs["activity"] / prefs["activity"].mean()))
    user_idx = np.repeat(np.arange(n_users), per_user)
    n = len(user_idx)
    span = weeks * 7 * 86400
    offsets = np.sort(rng.uniform(0, span, n))
    rng.shuffle(user_idx)  # random user per time slot; times stay sorted
    times = START + pd.to_timedelta(offsets, unit="s")

    # An impression shows an item that already exists at that time.
    arrival = (items["first_seen"] - START).dt.total_seconds().to_numpy()
    order = np.argsort(arrival)
    n_available = np.searchsorted(arrival[order], offsets, side="right")
    item_idx = order[(rng.random(n) * n_available).astype(int)]

    colour_idx = pd.Categorical(items["colour"], categories=list(COLOURS)).codes
    pattern_idx = pd.Categorical(items["pattern"], categories=PATTERNS).codes
    category_idx = pd.Categorical(items["category"], categories=CATEGORIES).codes
    log_price = np.log(items["price"].to_numpy())
    popularity = rng.normal(0, 0.3, len(items))
    logit = (-0.6
             + prefs["colour"][user_idx, colour_idx[item_idx]]
             + prefs["pattern"][user_idx, pattern_idx[item_idx]]
             + prefs["category"][user_idx, category_idx[item_idx]]
             + prefs["price"][user_idx] * (log_price[item_idx] - log_price.mean())
             + popularity[item_idx])
    context = {}
    if context_seed is not None:
        context, effect = _context_columns(times, context_seed)
        logit = logit + effect
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    return pd.DataFrame({
        "user_id": user_idx.astype(np.int64) + 1,
        "item_id": items["item_id"].to_numpy()[item_idx],
        "event_timestamp": times.floor("s"),
        "label": label,
        # The generator's own click logit: for analysis (the Bayes limit), never a model feature.
        "click_logit": logit.astype(np.float32),
        **context,
    })


def generate_shop(dst: str | Path, n_items: int = 200, n_users: int | None = None,
                  impressions_per_user: int = 40, weeks: int = 4, seed: int = 0,
                  image_size: int = 64, variant_share: float = 0.3, progress: bool = True,
                  context: bool = False, arrival_span: float = 0.9, event_types: bool = False) -> Dataset:
    """Write a synthetic shop in the canonical layout under `dst` and return it.

    variant_share: the fraction of items that are another colour of an earlier item's product
    (0 gives the shop of earlier releases, draw for draw). context: add the interaction columns
    hour_of_day (0-23) and device (mobile / desktop / tablet), which shift the click rate
    (HOUR_EFFECT, DEVICE_EFFECT); without it the shop is the same, draw for draw. arrival_span:
    new items arrive uniformly over this first fraction of the log (0.9: none in the last tenth, the
    test period, so every item has a history before it is tested; 1.0: until the last day, as in a
    real shop, where the test period has items that nobody has bought yet); the same draws either way.
    event_types: add the column event_type (impression / click / purchase: _event_types), which
    `features build --sequence purchase=purchase` builds a second behaviour sequence from."""
    rng = np.random.default_rng(seed)
    n_users = n_users or max(50, n_items // 2)
    if not 0.0 <= arrival_span <= 1.0:
        raise ValueError(f"arrival_span is a fraction of the log, in [0, 1]; got {arrival_span}")
    items = _make_items(n_items, rng, weeks, variant_share, seed, arrival_span)
    users, prefs = _make_users(n_users, rng)
    log = _make_log(items, prefs, impressions_per_user, weeks, rng, context_seed=seed if context else None)
    if event_types:
        log[EVENT_TYPE_COLUMN] = _event_types(log, items, prefs, seed)

    dst = Path(dst)
    (dst / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    category_idx = pd.Categorical(items["category"], categories=CATEGORIES).codes
    image_rng = np.random.default_rng(seed + 1)
    paths = []
    rows = zip(items["item_id"], category_idx, items["colour"], items["pattern"])
    for item_id, cat, colour, pattern in tqdm(rows, total=n_items, desc="rendering items", disable=not progress):
        rel = f"{IMAGES_DIR}/{item_id}.png"
        render_item_image(cat, colour, pattern, image_rng, image_size).save(dst / rel, optimize=False)
        paths.append(rel)
    items.insert(2, "image_path", paths)
    meta = DatasetMeta(
        name=f"synthetic-shop-{n_items}",
        item_categorical=["category", "brand"],
        item_dense=["price"],
        user_categorical=["age_bucket", "gender", "region"],
        sequence_attribute="category",
    )
    ds = Dataset(root=dst, meta=meta, items=items, users=users, interactions=log)
    save_dataset(ds, dst)
    if progress:
        print(f"synthetic shop: {n_items:,} items, {n_users:,} users, {len(log):,} impressions "
              f"({log['label'].mean():.1%} clicked) over {weeks} weeks -> {dst}")
    return ds
