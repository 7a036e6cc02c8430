"""Mesh construction, logical-to-mesh rules, state shardings and batch placement."""

import jax
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from astrojax import sharding
from astrojax.config import DEFAULT_LOGICAL_AXIS_RULES as RULES
from astrojax.config import ConfigError, MeshConfig


def test_make_mesh_fills_and_is_auto():
    mesh = sharding.make_mesh(MeshConfig(data=-1, fsdp=2, tensor=2))
    assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "context": 1, "tensor": 2}
    assert all(t == jax.sharding.AxisType.Auto for t in mesh.axis_types)


def test_make_mesh_on_a_subset_of_devices():
    mesh = sharding.make_mesh(MeshConfig(), devices=jax.devices()[:1])
    assert dict(mesh.shape) == {"data": 1, "fsdp": 1, "context": 1, "tensor": 1}


def test_logical_to_mesh_spec():
    assert sharding.logical_to_mesh_spec(("batch", "sequence"), RULES) == P(("data", "fsdp"),
                                                                            "context")
    assert sharding.logical_to_mesh_spec(("layers", "embed", "mlp"), RULES) == P(None, "fsdp",
                                                                               "tensor")
    with pytest.raises(KeyError, match="'bogus' has no rule"):
        sharding.logical_to_mesh_spec(("bogus",), RULES)


@pytest.mark.parametrize("rules, text", [
    ((("embed", "model"),), "mesh axis 'model'"),
    ((("embed", "fsdp"), ("embed", None)), "appears twice"),
])
def test_bad_rules_name_the_problem(rules, text):
    with pytest.raises(ConfigError, match=text):
        sharding.check_rules(rules)


def test_state_shardings_follow_logical_axes():
    mesh = sharding.make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    init = nnx.with_partitioning(nnx.initializers.lecun_normal(), ("embed", "mlp"))

    def build():
        with nnx.use_eager_sharding(False):
            return nnx.Linear(8, 16, kernel_init=init, rngs=nnx.Rngs(0))

    abstract = nnx.state(nnx.eval_shape(build), nnx.Param)
    shardings = sharding.state_shardings(abstract, mesh, RULES)
    assert shardings["kernel"].spec == P("fsdp", "tensor")
    assert shardings["bias"].spec == P()
    params = jax.jit(lambda: nnx.state(build(), nnx.Param), out_shardings=shardings)()
    kernel = params["kernel"][...]
    assert kernel.sharding.spec == P("fsdp", "tensor")
    assert {s.data.shape for s in kernel.addressable_shards} == {(4, 8)}


def test_shard_batch_splits_rows_over_data_axes():
    mesh = sharding.make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    tokens = np.arange(8 * 5, dtype=np.int32).reshape(8, 5)
    batch = sharding.shard_batch({"tokens": tokens}, mesh, RULES)
    assert batch["tokens"].sharding.spec == P(("data", "fsdp"), None)
    assert {s.data.shape for s in batch["tokens"].addressable_shards} == {(2, 5)}
    np.testing.assert_array_equal(np.asarray(batch["tokens"]), tokens)
    assert sharding.data_parallel_size(mesh, RULES) == 4


def test_constrain_places_activations_by_logical_axes():
    mesh = sharding.make_mesh(MeshConfig(data=2, context=4))
    x = np.arange(2 * 8 * 3, dtype=np.float32).reshape(2, 8, 3)
    activations = ("batch", "sequence", None)

    def run():
        return jax.jit(lambda x: sharding.constrain(x * 2, activations))(x)

    with jax.set_mesh(mesh):
        assert run().sharding.spec == P("data", "context")
        no_context = tuple(r for r in RULES if r[0] != "sequence") + (("sequence", None),)
        with sharding.axis_rules(no_context):
            assert run().sharding.spec == P("data")
    np.testing.assert_array_equal(sharding.constrain(x, activations), x)  # no mesh: no-op


def test_fitted_spec_leaves_out_axes_that_cannot_split():
    mesh = sharding.make_mesh(MeshConfig(data=2, fsdp=2, context=2))
    # batch 6 divides by data=2 but not by data x fsdp; the sequence 5 not by context
    assert sharding.fitted_spec((6, 5), ("batch", "sequence"), mesh) == P("data", None)
    assert sharding.fitted_spec((8, 4), ("batch", "sequence"), mesh) == P(("data", "fsdp"),
                                                                          "context")
    # an axis an earlier dimension uses is not used twice; excluded axes are not used at all
    assert sharding.fitted_spec((8, 8), ("batch", "embed"), mesh) == P(("data", "fsdp"), None)
    assert sharding.fitted_spec((8,), ("batch",), mesh, exclude=("fsdp",)) == P("data")
    with pytest.raises(ValueError, match="2 logical axes"):
        sharding.fitted_spec((8,), ("batch", None), mesh)
