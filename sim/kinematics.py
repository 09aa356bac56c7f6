"""Damped-least-squares inverse kinematics on the MuJoCo model, used to place the arm at a
task's start pose (never in the control loop, which is the impedance controller's job)."""

from __future__ import annotations

import mujoco
import numpy as np

ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 8))


def orientation_error(target_quat: np.ndarray, current_quat: np.ndarray) -> np.ndarray:
    """Rotation vector (3,) that takes `current_quat` to `target_quat`, in the world frame."""
    conj = np.empty(4)
    mujoco.mju_negQuat(conj, current_quat)
    delta = np.empty(4)
    mujoco.mju_mulQuat(delta, target_quat, conj)
    error = np.empty(3)
    mujoco.mju_quat2Vel(error, delta, 1.0)
    return error


def site_quat(data: mujoco.MjData, site_id: int) -> np.ndarray:
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, data.site_xmat[site_id])
    return quat


def solve_ik(
    model: mujoco.MjModel,
    data: mujoco.MjData,
    site: str,
    target_pos: np.ndarray,
    target_quat: np.ndarray,
    *,
    iterations: int = 200,
    tolerance: float = 1e-4,
    damping: float = 1e-3,
) -> np.ndarray:
    """Joint positions (7,) putting `site` at the target, starting from the arm's current qpos.

    Works on `data` in place (qpos of the arm joints is overwritten) and respects joint limits by
    clipping each iterate. Raises RuntimeError if the target is not reached."""
    site_id = model.site(site).id
    qpos_ids = np.array([model.jnt_qposadr[model.joint(j).id] for j in ARM_JOINTS])
    dof_ids = np.array([model.jnt_dofadr[model.joint(j).id] for j in ARM_JOINTS])
    limits = np.array([model.jnt_range[model.joint(j).id] for j in ARM_JOINTS])
    jac = np.zeros((6, model.nv))
    for _ in range(iterations):
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        error = np.concatenate(
            [target_pos - data.site_xpos[site_id], orientation_error(target_quat, site_quat(data, site_id))]
        )
        if np.linalg.norm(error) < tolerance:
            return data.qpos[qpos_ids].copy()
        mujoco.mj_jacSite(model, data, jac[:3], jac[3:], site_id)
        j = jac[:, dof_ids]
        step = j.T @ np.linalg.solve(j @ j.T + damping * np.eye(6), error)
        data.qpos[qpos_ids] = np.clip(data.qpos[qpos_ids] + step, limits[:, 0], limits[:, 1])
    raise RuntimeError(f"IK did not converge to {target_pos} (residual {np.linalg.norm(error):.2e})")
