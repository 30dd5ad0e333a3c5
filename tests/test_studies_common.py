"""kc.studies.common: reading a notebook's parameters into the settings every study shares."""

import pytest

from kc.studies.common import GFit, net_fields


def test_gfit_from_params():
    params = dict(ORDER=2, LAMBDA=0.1, LAMBDA_ALEXNET=8.0, FIT_LIMIT=128, TEST_LIMIT=64,
                  G_STEPS=400, G_LR=0.003, G_BATCH_SIZE=64)  # fmt: skip
    g = GFit.from_params(params)
    assert g.kwargs("vgg16")["lam"] == 0.1 and g.kwargs("resnet34", "alexnet")["lam"] == 8.0
    assert g.kwargs("vgg16")["test_limit"] == 64 and g.kwargs("vgg16")["g_lr"] == 0.003
    del params["G_LR"], params["ORDER"]
    with pytest.raises(ValueError, match=r"lack \['ORDER', 'G_LR'\]"):
        GFit.from_params(params)


def test_gfit_refuses_a_non_positive_budget():
    params = dict(ORDER=2, LAMBDA=0.1, FIT_LIMIT=128, TEST_LIMIT=64, G_STEPS=0, G_LR=0.003,
                  G_BATCH_SIZE=64)  # fmt: skip
    with pytest.raises(ValueError, match="G_STEPS must be an int >= 1, got 0"):
        GFit.from_params(params)


def test_net_fields_maps_eval_limit_to_the_networks_test_limit():
    p = dict(EPOCHS=1, WIDTH=0.125, INPUT_SIZE=32, TRAIN_LIMIT=600, EVAL_LIMIT=500,
             OPTIMIZER="adam", LR=1e-3, BATCH_SIZE=64)  # fmt: skip
    assert net_fields(p) == dict(epochs=1, width=0.125, input_size=32, train_limit=600,
                                 test_limit=500, optimizer="adam", lr=1e-3, batch_size=64)  # fmt: skip
