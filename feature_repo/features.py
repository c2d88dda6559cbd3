"""Feast definitions of a moon-features repository: what `feast apply` registers.

The shapes come from spec.json beside this file (vocabulary sizes, dense fields, the sequence
length, the pinned embedding views) and from the embedding sources in data/; the views
themselves are declared here, to be read and reviewed. `moon-features features build` writes
spec.json and data/; `moon_features.store.repo.apply_repo` registers exactly what this file
defines (it runs this file, as `feast apply` does).
"""
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, PushSource, ValueType
from feast.types import Array, Float32, Int64

from moon_features.store.definitions import (EMBEDDING_DIM_TAG, EMBEDDING_VERSION_TAG, NO_TTL, embedding_versions,
                                             file_source, load_repo_spec, profile_schema)

REPO = Path(__file__).resolve().parent
spec, DATA = load_repo_spec(REPO), REPO / "data"

# --- entities -------------------------------------------------------------------------------
user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64, description="A shopper")
item = Entity(name="item", join_keys=["item_id"], value_type=ValueType.INT64, description="A catalogue item")

# --- profiles: the spec's typed fields read from each view (spec.fields()): categoricals as Int64
# vocabulary codes (0 = unknown; the vocabulary size is a field tag), dense values as Float32.
# Context features (spec.context) are in no view: they come with the entity rows / the request.
item_profile = FeatureView(
    name="item_profile", entities=[item], ttl=NO_TTL,
    schema=profile_schema(spec, "item_profile"),
    source=file_source(DATA, "item_profile"),
    description="Item attributes as vocabulary codes (0 = unknown) and dense values")

user_profile = FeatureView(
    name="user_profile", entities=[user], ttl=NO_TTL,
    schema=profile_schema(spec, "user_profile"),
    source=file_source(DATA, "user_profile"),
    description="User profile fields as vocabulary codes (0 = unknown)")

# --- behaviour sequences: offline table + a push source for real-time appends (store/push.py)
user_behavior_push = PushSource(name="user_behavior_push", batch_source=file_source(DATA, "user_behavior_sequence"))

user_behavior_sequence = FeatureView(
    name="user_behavior_sequence", entities=[user], ttl=NO_TTL,
    schema=[Field(name="hist_item_ids", dtype=Array(Int64)), Field(name="hist_len", dtype=Int64)],
    source=user_behavior_push, tags={"max_len": str(spec.max_len)},
    description=f"The user's last {spec.max_len} positive items strictly before event_timestamp, oldest first")

# --- behaviour sequences besides the main one (`features build --sequence purchase=purchase`):
# the positives of some event types only, each with its own view and push source.
behaviour = [user_behavior_sequence]
for seq in spec.sequences:
    globals()[seq.push_source] = PushSource(name=seq.push_source, batch_source=file_source(DATA, seq.view_name))
    globals()[seq.view_name] = FeatureView(
        name=seq.view_name, entities=[user], ttl=NO_TTL,
        schema=[Field(name=seq.ids_column, dtype=Array(Int64)), Field(name=seq.len_column, dtype=Int64)],
        source=globals()[seq.push_source], tags={"max_len": str(spec.max_len)},
        description=f"The user's last {spec.max_len} positive {'/'.join(seq.event_types)} items before event_timestamp")
    behaviour.append(globals()[seq.view_name])

# --- the feature service of an ids-only model ----------------------------------------------
ids_service = FeatureService(
    name=spec.with_embedding(None).feature_service_name,
    features=[user_profile, item_profile, *behaviour],
    description="ID and profile features with behaviour sequences")

# --- MOON item embeddings: one view per encoder version (data/item_moon_embedding_v<N>.parquet,
# plus the version spec.json pins), e.g. `item_moon_embedding_v1`; a new encoder version is a new
# view, whose dimension may change. The version and dimension tags are the contract the plugin's
# writers check (store/validation.py). Each version has a feature service that pins it.
for emb in embedding_versions(spec, DATA):
    globals()[emb.view_name] = FeatureView(
        name=emb.view_name, entities=[item], ttl=NO_TTL,
        schema=[Field(name="embedding", dtype=Array(Float32), tags={EMBEDDING_DIM_TAG: str(emb.dim)})],
        source=file_source(DATA, emb.view_name),
        tags={EMBEDDING_VERSION_TAG: str(emb.version), EMBEDDING_DIM_TAG: str(emb.dim)},
        description=f"MOON item embedding, encoder version {emb.version}, dimension {emb.dim}, L2-normalised")
    globals()[f"{emb.view_name}_service"] = FeatureService(
        name=spec.with_embedding(emb).feature_service_name,
        features=[user_profile, item_profile, *behaviour, globals()[emb.view_name]],
        tags={EMBEDDING_VERSION_TAG: str(emb.version)},
        description=f"Everything a CTR model with MOON embeddings v{emb.version} (d={emb.dim}) reads")

# --- several embedding views (`features build --embedding-versions 1,2`): the models read their
# vectors concatenated in spec.json's order, one content vector per item; this service pins them all.
if len(spec.embeddings) > 1:
    all_embeddings_service = FeatureService(
        name=spec.feature_service_name,
        features=[user_profile, item_profile, *behaviour, *(globals()[e.view_name] for e in spec.embeddings)],
        tags={EMBEDDING_VERSION_TAG: ",".join(map(str, spec.embedding_versions))},
        description=f"Everything a CTR model over the embedding views {list(spec.embedding_versions)} reads")
