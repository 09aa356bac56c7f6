import numpy as np
import pytest

from robot import WorkspaceLimits, validate_command

BOX = WorkspaceLimits((0.3, -0.2, 0.0), (0.7, 0.2, 0.4))


def test_clamp_moves_only_out_of_range_axes():
    np.testing.assert_allclose(BOX.clamp(np.array([0.9, 0.1, -0.5])), [0.7, 0.1, 0.0])
    np.testing.assert_allclose(BOX.clamp(np.array([0.5, 0.0, 0.2])), [0.5, 0.0, 0.2])


def test_signed_distance_inside_and_outside():
    # Nearest face of (0.5, 0.15, 0.2) is y = 0.2, 5 cm away.
    assert BOX.signed_distance(np.array([0.5, 0.15, 0.2])) == pytest.approx(0.05)
    # 10 cm beyond x = 0.7.
    assert BOX.signed_distance(np.array([0.8, 0.0, 0.2])) == pytest.approx(-0.1)


def test_box_must_be_ordered():
    with pytest.raises(ValueError, match="below"):
        WorkspaceLimits((0, 0, 0), (1, -1, 1))


@pytest.mark.parametrize(
    "pos, quat, gripper, message",
    [
        ([np.nan, 0, 0], [1, 0, 0, 0], 0.0, "non-finite"),
        ([0, 0, 0], [1, 0, 0, 0], np.inf, "non-finite"),
        ([0, 0], [1, 0, 0, 0], 0.0, "shape|pos"),
        ([0, 0, 0], [2, 0, 0, 0], 0.0, "unit length"),
    ],
)
def test_validate_command_rejects(pos, quat, gripper, message):
    with pytest.raises(ValueError, match=message):
        validate_command(np.array(pos, dtype=float), np.array(quat, dtype=float), gripper)


def test_rotate_by_quat_by_hand():
    from robot import TCP_DOWN_QUAT, rotate_by_quat

    half = np.sqrt(0.5)
    # 90 degrees about z: x -> y, y -> -x, z stays.
    quarter_z = np.array([half, 0.0, 0.0, half])
    np.testing.assert_allclose(rotate_by_quat(np.array([1.0, 0.0, 0.0]), quarter_z), [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(rotate_by_quat(np.array([0.0, 1.0, 0.0]), quarter_z), [-1, 0, 0], atol=1e-12)
    # The tool pointing down is 180 degrees about x: y and z flip sign.
    np.testing.assert_allclose(rotate_by_quat(np.array([1.0, 2.0, 3.0]), TCP_DOWN_QUAT), [1, -2, -3])
