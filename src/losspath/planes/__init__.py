"""Planes through network states: loss and metrics over a grid of θ(a, b) = origin + a·u + b·v, the directions
that span them (three states, a training trajectory, filter-normalized random) and projections onto them."""
from .directions import Plane, plane_through, project, random_plane, state_at, trajectory_plane
from .engine import evaluate_plane
from .result import PlaneResult

__all__ = ["Plane", "PlaneResult", "evaluate_plane", "plane_through", "project", "random_plane", "state_at",
           "trajectory_plane"]
