"""A fast parametric detector: final-state particles in, reconstructed objects out.

The model is ATLAS-like and deliberately simple — one table of numbers
(:class:`Detector`, mirrored in docs/explanation/simulation.md) — and every function is
a pure function of arrays and a ``numpy.random.Generator``:

- **Tracker** (|η| < 2.5): charged particles with pT > 0.5 GeV are found with an
  efficiency that depends on pT and |η| (the charged-hadron tracking efficiencies of the
  Delphes 3 ATLAS card, de Favereau et al., JHEP 02 (2014) 057); the curvature 1/pT is
  smeared with σ(pT)/pT = 1 % ⊕ 0.05 %·pT/GeV (ATLAS inner-detector design resolution,
  JINST 3 (2008) S08003, Table 1.1). Softer charged particles curl up in the solenoid
  field and are lost.
- **Calorimeter** (|η| < 4.9): towers of Δη × Δφ = 0.1 × 2π/64 (the ATLAS tile
  granularity). Photons and electrons deposit in the electromagnetic section, hadrons in
  the hadronic one; each section of each tower is smeared as σ/E = a/√E ⊕ b with
  a = 10 %, b = 0.7 % (EM) and a = 50 %, b = 3 % (hadronic) for |η| < 3.2 and
  a = 100 %, b = 10 % in the forward calorimeter (ATLAS design values, same table).
  Sections below 0.5 GeV (EM) and 1 GeV (hadronic) are dropped as noise. A tower is a
  massless object at the centre of its cell.
- **Energy flow**: a charged particle that has a track is taken from the tracker when
  the tracker measures it better than the calorimeter would (soft and medium pT), and
  from the calorimeter otherwise (the tracker's σ grows ∝ pT, the calorimeter's falls
  ∝ 1/√E); it is never counted twice. Untracked charged particles deposit in the
  calorimeter. Muons are taken from the tracker only (minimum-ionizing in the
  calorimeter). Neutrinos never reach the detector (removed before).
- **Jets**: a jet-energy scale ``jes`` and an extra relative resolution ``jer`` act on
  reconstructed jets (:func:`jet_response`), so that pseudo-data can differ from
  simulation the way a mis-calibrated detector would.

>>> import numpy as np
>>> p = Particles.from_arrays(px=[50.0, 0.0], py=[0.0, 30.0], pz=[10.0, 5.0],
...                           e=[51.0, 30.5], pid=[211, 22], charge=[1.0, 0.0], counts=[2])
>>> reco = simulate(p, np.random.default_rng(1))
>>> reco.n_events, int(reco.counts[0]) >= 1
(1, True)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import vector

from simkit.errors import SimkitError

#: PDG codes that deposit in the electromagnetic calorimeter (photons, electrons).
EM_PARTICLES = (22, 11)
MUON = 13


# --------------------------------------------------------------------------- particles


@dataclass(frozen=True, eq=False)
class Particles:
    """Particles (or reconstructed objects) of many events as flat arrays.

    ``px, py, pz, e`` in GeV, ``pid`` the PDG code (0 for a calorimeter tower),
    ``charge`` in units of e, and ``counts[i]`` the number of entries of event *i*;
    entries are grouped by event, in event order.
    """

    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    pid: np.ndarray
    charge: np.ndarray
    counts: np.ndarray

    @classmethod
    def from_arrays(cls, *, px, py, pz, e, pid, charge, counts) -> Particles:
        counts = np.asarray(counts, dtype=np.int64)
        arrays = [np.asarray(a, dtype=np.float64) for a in (px, py, pz, e)]
        pid = np.asarray(pid, dtype=np.int64)
        charge = np.asarray(charge, dtype=np.float64)
        n = int(counts.sum())
        for name, a in zip(
            ("px", "py", "pz", "e", "pid", "charge"), [*arrays, pid, charge], strict=True
        ):
            if a.shape != (n,):
                raise SimkitError(f"particles: {name} has shape {a.shape}, counts sum to {n}")
        return cls(*arrays, pid, charge, counts)

    @property
    def n_events(self) -> int:
        return len(self.counts)

    def event_index(self) -> np.ndarray:
        """The event each entry belongs to."""
        return np.repeat(np.arange(self.n_events), self.counts)

    def momenta(self):
        """The four-momenta as a ``vector`` numpy array (px, py, pz, E)."""
        return vector.array({"px": self.px, "py": self.py, "pz": self.pz, "E": self.e})

    def select(self, keep: np.ndarray) -> Particles:
        """The entries where ``keep`` is true, still grouped by event."""
        counts = np.bincount(self.event_index()[keep], minlength=self.n_events)
        return Particles(
            self.px[keep],
            self.py[keep],
            self.pz[keep],
            self.e[keep],
            self.pid[keep],
            self.charge[keep],
            counts.astype(np.int64),
        )


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Detector:
    """Parameters of the parametric detector (energies in GeV). The detector table of
    docs/explanation/simulation.md lists the same fields with their defaults and sources
    (a test compares them)."""

    tracker_eta: float = 2.5
    track_pt_min: float = 0.5
    track_efficiency_central: float = 0.95  # |η| ≤ 1.5, pT > 1 GeV
    track_efficiency_forward: float = 0.85  # 1.5 < |η| ≤ 2.5, pT > 1 GeV
    track_efficiency_soft_central: float = 0.70  # |η| ≤ 1.5, pT ≤ 1 GeV
    track_efficiency_soft_forward: float = 0.60  # 1.5 < |η| ≤ 2.5, pT ≤ 1 GeV
    track_resolution_constant: float = 0.01
    track_resolution_slope: float = 5e-4  # per GeV of pT
    calo_eta: float = 4.9
    calo_forward_eta: float = 3.2
    cell_eta: float = 0.1
    cells_phi: int = 64
    em_stochastic: float = 0.10
    em_constant: float = 0.007
    had_stochastic: float = 0.50
    had_constant: float = 0.03
    forward_stochastic: float = 1.00
    forward_constant: float = 0.10
    em_threshold: float = 0.5
    had_threshold: float = 1.0
    jes: float = 1.0
    jer: float = 0.03

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not np.isfinite(value) or value < 0:
                raise SimkitError(f"detector: {f.name} must be finite and ≥ 0, got {value}")
        for name in (
            "track_efficiency_central",
            "track_efficiency_forward",
            "track_efficiency_soft_central",
            "track_efficiency_soft_forward",
        ):
            if getattr(self, name) > 1:
                raise SimkitError(
                    f"detector: {name} is an efficiency ≤ 1, got {getattr(self, name)}"
                )
        if self.jes <= 0:
            raise SimkitError(f"detector: jes must be positive, got {self.jes}")
        if self.cell_eta <= 0 or self.cells_phi < 1 or self.calo_eta <= 0:
            raise SimkitError("detector: calorimeter cells and acceptance must be positive")

    def as_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- response


def track_efficiency(pt: np.ndarray, abs_eta: np.ndarray, det: Detector) -> np.ndarray:
    """Probability to reconstruct a charged particle's track (0 outside the tracker)."""
    central = abs_eta <= 1.5
    hard = pt > 1.0
    eff = np.where(
        central,
        np.where(hard, det.track_efficiency_central, det.track_efficiency_soft_central),
        np.where(hard, det.track_efficiency_forward, det.track_efficiency_soft_forward),
    )
    inside = (abs_eta < det.tracker_eta) & (pt > det.track_pt_min)
    return np.where(inside, eff, 0.0)


def track_resolution(pt: np.ndarray, det: Detector) -> np.ndarray:
    """Relative track pT resolution σ(pT)/pT = constant ⊕ slope·pT."""
    return np.hypot(det.track_resolution_constant, det.track_resolution_slope * pt)


def calo_resolution(
    energy: np.ndarray, abs_eta: np.ndarray, em: np.ndarray | bool, det: Detector
) -> np.ndarray:
    """Relative calorimeter resolution σ(E)/E = a/√E ⊕ b of the EM or hadronic section.

    ``energy`` must be positive (a resolution of nothing is not defined).
    """
    forward = abs_eta >= det.calo_forward_eta
    a = np.where(
        forward, det.forward_stochastic, np.where(em, det.em_stochastic, det.had_stochastic)
    )
    b = np.where(forward, det.forward_constant, np.where(em, det.em_constant, det.had_constant))
    return np.hypot(a / np.sqrt(energy), b)


def jet_response(n_jets: int, rng: np.random.Generator, det: Detector) -> np.ndarray:
    """Per-jet energy factors: ``jes`` times a log-normal of width ``jer`` (median 1).

    Log-normal rather than Gaussian so that a factor is never ≤ 0; for small ``jer`` it is
    a Gaussian of relative width ``jer``. The normals are drawn even when ``jer`` = 0, so
    that the same seed gives the same random stream whatever the knobs.
    """
    z = rng.standard_normal(n_jets)
    return det.jes * np.exp(det.jer * z)


def simulate(
    particles: Particles, rng: np.random.Generator, det: Detector = Detector()
) -> Particles:
    """Reconstructed objects (tracks, then calorimeter towers) of each event.

    ``particles`` are the visible final-state particles. Tracks keep their particle's
    PDG code, charge and mass; towers have pid 0, charge 0 and no mass.
    """
    n = len(particles.px)
    mom = particles.momenta()
    pt, eta, phi = mom.pt, mom.eta, mom.phi
    abs_eta = np.abs(eta)
    event = particles.event_index()
    abs_pid = np.abs(particles.pid)
    charged = particles.charge != 0
    muon = abs_pid == MUON
    em = np.isin(abs_pid, EM_PARTICLES)

    # the same number of draws per particle whatever happens to it: reproducible streams
    u_track = rng.random(n)
    z_track = rng.standard_normal(n)

    tracked = charged & (u_track < track_efficiency(pt, abs_eta, det))
    # energy flow: the tracker wins where it measures the particle better
    sigma_track = track_resolution(pt, det)
    energy = np.maximum(particles.e, 1e-9)  # a resolution is only evaluated where E > 0
    use_track = tracked & (muon | (sigma_track < calo_resolution(energy, abs_eta, em, det)))
    curvature = 1.0 + sigma_track * z_track
    # a curvature smeared through zero would be a charge flip: that track is lost (for the
    # resolutions used here it needs a > 14σ fluctuation)
    track_ok = use_track & (curvature > 0)
    looper = charged & (abs_eta < det.tracker_eta) & (pt <= det.track_pt_min)
    to_calo = ~use_track & ~muon & ~looper & (abs_eta < det.calo_eta)

    # tracks: measured pT, true direction and mass
    t = track_ok
    track_mom = vector.array(
        {
            "pt": pt[t] / curvature[t],
            "eta": eta[t],
            "phi": phi[t],
            "mass": np.maximum(mom.mass[t], 0.0),  # m² < 0 only by rounding for massless
        }
    )
    track_event = event[t]

    # towers: deposits summed per (event, cell), then each section smeared
    n_eta = int(np.ceil(2 * det.calo_eta / det.cell_eta))
    ieta = np.clip(((eta[to_calo] + det.calo_eta) / det.cell_eta).astype(np.int64), 0, n_eta - 1)
    iphi = ((phi[to_calo] + np.pi) / (2 * np.pi) * det.cells_phi).astype(np.int64)
    iphi = np.clip(iphi, 0, det.cells_phi - 1)
    n_cells = n_eta * det.cells_phi
    key = event[to_calo] * n_cells + ieta * det.cells_phi + iphi
    cells, where = np.unique(key, return_inverse=True)
    deposit = particles.e[to_calo]
    e_em = np.bincount(where, weights=np.where(em[to_calo], deposit, 0.0), minlength=len(cells))
    e_had = np.bincount(where, weights=np.where(em[to_calo], 0.0, deposit), minlength=len(cells))
    tower_event = cells // n_cells
    cell_eta = -det.calo_eta + (((cells % n_cells) // det.cells_phi) + 0.5) * det.cell_eta
    cell_phi = -np.pi + ((cells % det.cells_phi) + 0.5) * (2 * np.pi / det.cells_phi)
    z_cells = rng.standard_normal((len(cells), 2))
    abs_cell_eta = np.abs(cell_eta)
    e_em = _smear(e_em, z_cells[:, 0], abs_cell_eta, True, det, det.em_threshold)
    e_had = _smear(e_had, z_cells[:, 1], abs_cell_eta, False, det, det.had_threshold)
    e_tower = e_em + e_had
    lit = e_tower > 0
    tower_mom = vector.array(
        {
            "pt": e_tower[lit] / np.cosh(cell_eta[lit]),
            "eta": cell_eta[lit],
            "phi": cell_phi[lit],
            "mass": np.zeros(int(lit.sum())),
        }
    )
    tower_event = tower_event[lit]

    # tracks first, then towers, grouped by event (a stable sort keeps that order)
    all_event = np.concatenate([track_event, tower_event])
    order = np.argsort(all_event, kind="stable")
    n_towers = len(tower_event)

    def joined(track_values, tower_values):
        return np.concatenate([track_values, tower_values])[order]

    return Particles(
        px=joined(track_mom.px, tower_mom.px),
        py=joined(track_mom.py, tower_mom.py),
        pz=joined(track_mom.pz, tower_mom.pz),
        e=joined(track_mom.E, tower_mom.E),
        pid=joined(particles.pid[t], np.zeros(n_towers, np.int64)),
        charge=joined(particles.charge[t], np.zeros(n_towers)),
        counts=np.bincount(all_event, minlength=particles.n_events).astype(np.int64),
    )


def _smear(
    energy: np.ndarray,
    z: np.ndarray,
    abs_eta: np.ndarray,
    em: bool,
    det: Detector,
    threshold: float,
) -> np.ndarray:
    """Gaussian-smeared section energies; sections at or below threshold read 0."""
    lit = energy > 0
    measured = np.zeros_like(energy)
    sigma = calo_resolution(energy[lit], abs_eta[lit], em, det)
    measured[lit] = energy[lit] * (1.0 + sigma * z[lit])
    return np.where(measured > threshold, measured, 0.0)
