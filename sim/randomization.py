"""Seeded domain randomisation of the twin: object colours, lighting, friction, object mass and
camera pose jitter. Every reset starts from the nominal model values, so nothing drifts."""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np


@dataclass(frozen=True)
class DomainRandomization:
    """Ranges of each randomisation; the defaults change nothing (object start poses are part of
    the task and always random)."""

    colours: bool = False  # random RGB for the task's objects and the table top
    lighting: bool = False  # light intensity and direction
    friction_scale: tuple[float, float] = (1.0, 1.0)  # multiplies object sliding friction
    mass_scale: tuple[float, float] = (1.0, 1.0)  # multiplies object mass and inertia
    camera_pos_jitter: float = 0.0  # m, uniform per axis, fixed cameras only
    camera_rot_jitter: float = 0.0  # rad, uniform per axis, fixed cameras only

    @classmethod
    def full(cls) -> DomainRandomization:
        """The ranges used for sim-to-real robustness."""
        return cls(
            colours=True,
            lighting=True,
            friction_scale=(0.7, 1.3),
            mass_scale=(0.5, 2.0),
            camera_pos_jitter=0.01,
            camera_rot_jitter=0.03,
        )


class Randomizer:
    """Applies a `DomainRandomization` to one model, remembering the nominal values."""

    def __init__(self, model: mujoco.MjModel, config: DomainRandomization, scene) -> None:
        self.model = model
        self.config = config
        self.colour_geoms = [model.geom(name).id for name in scene.colour_geoms]
        self.friction_geoms = [model.geom(name).id for name in scene.friction_geoms]
        self.mass_bodies = [model.body(name).id for name in scene.mass_bodies]
        self.fixed_cameras = [i for i in range(model.ncam) if model.cam_bodyid[i] == 0]
        self.nominal = {
            "geom_rgba": model.geom_rgba.copy(),
            "geom_friction": model.geom_friction.copy(),
            "body_mass": model.body_mass.copy(),
            "body_inertia": model.body_inertia.copy(),
            "light_diffuse": model.light_diffuse.copy(),
            "light_dir": model.light_dir.copy(),
            "cam_pos": model.cam_pos.copy(),
            "cam_quat": model.cam_quat.copy(),
        }

    def apply(self, rng: np.random.Generator) -> None:
        m, c = self.model, self.config
        for field, value in self.nominal.items():
            getattr(m, field)[:] = value
        if c.colours:
            for g in self.colour_geoms:
                m.geom_rgba[g, :3] = rng.uniform(0.1, 0.95, size=3)
        if c.lighting:
            m.light_diffuse[:] *= rng.uniform(0.6, 1.4, size=(m.nlight, 1))
            m.light_dir[:] += rng.uniform(-0.2, 0.2, size=m.light_dir.shape)
            m.light_dir[:] /= np.linalg.norm(m.light_dir, axis=1, keepdims=True)
        for g in self.friction_geoms:
            m.geom_friction[g, 0] *= rng.uniform(*c.friction_scale)
        for b in self.mass_bodies:
            scale = rng.uniform(*c.mass_scale)
            m.body_mass[b] *= scale
            m.body_inertia[b] *= scale
        for cam in self.fixed_cameras:
            m.cam_pos[cam] += rng.uniform(-c.camera_pos_jitter, c.camera_pos_jitter, size=3)
            rotvec = rng.uniform(-c.camera_rot_jitter, c.camera_rot_jitter, size=3)
            angle = float(np.linalg.norm(rotvec))
            if angle > 0:
                tilt = np.empty(4)
                mujoco.mju_axisAngle2Quat(tilt, rotvec / angle, angle)
                mujoco.mju_mulQuat(m.cam_quat[cam], tilt, self.nominal["cam_quat"][cam].copy())
