"""simkit import root: uproot-written trees shaped like NanoAOD and Delphes, mappings, errors."""

import dataclasses
import sys

import awkward as ak
import numpy as np
import pytest
import uproot
import vector

from simkit.cli import main
from simkit.errors import SimkitError
from simkit.formats import sha256
from simkit.formats.root import RootConfig, dimension_aliases, import_root, load_mapping
from simkit.generators import jets as J
from simkit.io import read_sample


def fat_jets(n: int, rng: np.random.Generator, counts=None) -> dict[str, np.ndarray]:
    """Flat per-jet arrays (not pT-ordered) and the jets per event."""
    counts = rng.integers(0, 5, n) if counts is None else np.asarray(counts)
    total = int(counts.sum())
    tau1 = rng.uniform(0.2, 0.6, total)
    tau2 = tau1 * rng.uniform(0.2, 0.9, total)
    return {
        "counts": counts,
        "pt": rng.uniform(300, 2200, total),
        "eta": rng.normal(0, 1.2, total),
        "phi": rng.uniform(-np.pi, np.pi, total),
        "mass": rng.uniform(20, 500, total),
        "tau1": tau1,
        "tau2": tau2,
        "tau3": tau2 * rng.uniform(0.3, 0.9, total),
        "n": rng.integers(5, 120, total),
    }


def write_nanoaod(path, jets, weight=None, extra=None):
    """A tree shaped like NanoAOD: counter nFatJet, jagged FatJet_* branches."""
    counts = jets["counts"]

    def jag(values, dtype=np.float32):
        return ak.unflatten(np.asarray(values, dtype=dtype), counts)

    branches = {
        f"FatJet_{k}": jag(jets[k]) for k in ("pt", "eta", "phi", "mass", "tau1", "tau2", "tau3")
    }
    branches["FatJet_nConstituents"] = jag(jets["n"], np.uint8)
    branches["FatJet_msoftdrop"] = jag(jets["mass"] * 0.8)
    branches["MET_pt"] = np.linspace(0.0, 100.0, len(counts)).astype(np.float32)
    if weight is not None:
        branches["genWeight"] = weight.astype(np.float32)
    branches.update(extra or {})
    types = {k: v.type.content if isinstance(v, ak.Array) else v.dtype for k, v in branches.items()}
    with uproot.recreate(path) as fh:
        fh.mktree("Events", types, counter_name=lambda _: "nFatJet")
        fh["Events"].extend(branches)


def write_delphes(path, jets, weight):
    """A tree shaped like Delphes: FatJet_size, FatJet.PT, FatJet.Eta, FatJet.Phi,
    FatJet.Mass and Event.Weight (one entry per event). Delphes keeps τ1..τ5 in one
    per-jet array branch, FatJet.Tau[5]; uproot 5.7 cannot write a jagged fixed-size
    branch that it reads back (it mis-reads its own offsets), so the taus are written here
    as FatJet.Tau1..3 and the test swaps them into the built-in mapping (the [5] name is
    covered by test_dimension_aliases)."""
    counts = jets["counts"]
    fat = {
        "FatJet.PT": jets["pt"],
        "FatJet.Eta": jets["eta"],
        "FatJet.Phi": jets["phi"],
        "FatJet.Mass": jets["mass"],
        "FatJet.Tau1": jets["tau1"],
        "FatJet.Tau2": jets["tau2"],
        "FatJet.Tau3": jets["tau3"],
    }
    fat = {k: ak.unflatten(v.astype(np.float32), counts) for k, v in fat.items()}
    event = {"Event.Weight": ak.unflatten(weight.astype(np.float32), np.ones(len(counts), int))}
    with uproot.recreate(path) as fh:
        types = {k: v.type.content for k, v in {**fat, **event}.items()}
        fh.mktree(
            "Delphes",
            types,
            counter_name=lambda name: "Event_size" if name.startswith("Event") else "FatJet_size",
        )
        fh["Delphes"].extend({**fat, **event})


def delphes_mapping():
    """The built-in Delphes mapping with the taus from FatJet.Tau1..3 (see write_delphes)."""
    mapping = load_mapping("delphes")
    reco = mapping.levels["reco"]
    assert reco.dijet.fields["tau2"] == "FatJet.Tau[:, :, 1]"
    fields = {**reco.dijet.fields, **{f"tau{k}": f"FatJet.Tau{k}" for k in (1, 2, 3)}}
    dijet = dataclasses.replace(reco.dijet, fields=fields)
    return mapping.replace(levels={"reco": dataclasses.replace(reco, dijet=dijet)})


def expected_dijet(jets, with_counts=True):
    """The reference columns computed here, event by event, for events with two jets."""
    rows, first = [], np.concatenate([[0], np.cumsum(jets["counts"])[:-1]])
    f32 = {
        k: np.asarray(v, np.float32).astype(np.float64) for k, v in jets.items() if k != "counts"
    }
    for start, count in zip(first, jets["counts"], strict=True):
        if count < 2:
            continue
        idx = start + np.argsort(-f32["pt"][start : start + count], kind="stable")[:2]
        idx = idx[np.argsort(-f32["mass"][idx], kind="stable")]  # j1 the heavier
        p4 = [
            vector.obj(pt=f32["pt"][i], eta=f32["eta"][i], phi=f32["phi"][i], mass=f32["mass"][i])
            for i in idx
        ]
        row = {"mjj": (p4[0] + p4[1]).mass}
        for k, i in enumerate(idx, start=1):
            row |= {
                f"pt_j{k}": f32["pt"][i],
                f"eta_j{k}": f32["eta"][i],
                f"phi_j{k}": f32["phi"][i],
                f"m_j{k}": f32["mass"][i],
                f"tau21_j{k}": f32["tau2"][i] / f32["tau1"][i],
                f"tau32_j{k}": f32["tau3"][i] / f32["tau2"][i],
            }
            if with_counts:
                row[f"n_j{k}"] = f32["n"][i]
        row["delta_mj"] = row["m_j1"] - row["m_j2"]
        rows.append(row)
    return rows


def assert_matches(table, rows, min_pt=J.MIN_LEADING_PT):
    assert len(table) == len(rows)
    for i, row in enumerate(rows):
        passes = max(row["pt_j1"], row["pt_j2"]) > min_pt
        assert table.passed[i] == passes
        for column, value in row.items():
            got = table.column(column)[i]
            assert got == (pytest.approx(value, rel=1e-6, abs=1e-5) if passes else 0.0), column


def test_nanoaod_builtin_mapping(tmp_path, rng):
    jets = fat_jets(400, rng)
    weight = rng.normal(1.0, 0.2, 400)
    write_nanoaod(tmp_path / "nano.root", jets, weight)
    result = import_root(tmp_path / "nano.root", tmp_path / "out.h5", "nanoaod", weight="genWeight")
    sample = read_sample(result.output)
    table = sample.reco
    assert table.columns == J.COLUMNS  # n_j from FatJet_nConstituents
    assert_matches(table, expected_dijet(jets))
    np.testing.assert_array_equal(sample.weights, weight.astype(np.float32)[jets["counts"] >= 2])
    settings = sample.provenance["settings"]
    assert settings["sources"][0]["sha256"] == sha256(tmp_path / "nano.root")
    assert settings["mapping"]["name"] == "nanoaod" and "FatJet_tau2" in settings["mapping"]["text"]
    assert settings["mapping"]["weight"] == "genWeight"


def test_delphes_builtin_mapping(tmp_path, rng):
    jets = fat_jets(300, rng)
    weight = rng.uniform(0.5, 2.0, 300)
    write_delphes(tmp_path / "delphes.root", jets, weight)
    sample = read_sample(
        import_root(tmp_path / "delphes.root", tmp_path / "o.h5", delphes_mapping()).output
    )
    assert sample.reco.columns == tuple(c for c in J.COLUMNS if not c.startswith("n_j"))
    assert_matches(sample.reco, expected_dijet(jets, with_counts=False))
    np.testing.assert_array_equal(sample.weights, weight.astype(np.float32)[jets["counts"] >= 2])


def test_several_files_a_glob_chunks_and_a_limit(tmp_path, rng):
    parts = [fat_jets(150, rng) for _ in range(3)]
    for i, jets in enumerate(parts):
        write_nanoaod(tmp_path / f"part{i}.root", jets)
    one = read_sample(
        import_root(str(tmp_path / "part*.root"), tmp_path / "a.h5", "nanoaod").output
    )
    rows = [r for jets in parts for r in expected_dijet(jets)]
    assert_matches(one.reco, rows)
    chunked = import_root(
        [tmp_path / "part0.root", str(tmp_path / "part[12].root")],
        tmp_path / "b.h5",
        "nanoaod",
        RootConfig(chunk_size=37),
    )
    np.testing.assert_array_equal(read_sample(chunked.output).reco.features, one.reco.features)
    limited = import_root(
        str(tmp_path / "part*.root"), tmp_path / "c.h5", "nanoaod", RootConfig(max_entries=200)
    )
    n_first = int((parts[0]["counts"] >= 2).sum() + (parts[1]["counts"][:50] >= 2).sum())
    assert limited.n_events == n_first
    assert len(read_sample(limited.output).provenance["settings"]["sources"]) == 3


def test_custom_mapping_with_expressions(tmp_path, rng):
    jets = fat_jets(200, rng, counts=rng.integers(1, 4, 200))
    write_nanoaod(
        tmp_path / "t.root", jets, extra={"isSignal": (np.arange(200) % 3 == 0).astype(np.int32)}
    )
    (tmp_path / "map.toml").write_text(
        'tree = "Events"\n'
        'selection = "nth(FatJet_pt, 0) > 500"\n'
        'label = "isSignal"\n'
        "[reco]\n"
        'pass = "nFatJet >= 1"\n'
        "[reco.columns]\n"
        'tau21_lead = "nth(FatJet_tau2, 0) / nth(FatJet_tau1, 0)"\n'
        'n_fat = "num(FatJet_pt)"\n'
        'ht = "sum(FatJet_pt)"\n'
        'met = "MET_pt"\n'
        "[reco.units]\n"
        'ht = "GeV"\n'
        'met = "GeV"\n'
        "[scores]\n"
        'lead_mass = "max(FatJet_mass)"\n'
    )
    sample = read_sample(
        import_root(tmp_path / "t.root", tmp_path / "o.h5", tmp_path / "map.toml").output
    )
    first = np.concatenate([[0], np.cumsum(jets["counts"])[:-1]])
    pt32 = jets["pt"].astype(np.float32)
    keep = pt32[first] > 500  # NanoAOD-like: the file's first jet is the one nth(…, 0) takes
    table = sample.reco
    assert table.columns == ("tau21_lead", "n_fat", "ht", "met") and table.units[2:] == (
        "GeV",
        "GeV",
    )
    tau1, tau2 = (jets[k].astype(np.float32)[first[keep]] for k in ("tau1", "tau2"))
    np.testing.assert_allclose(table.column("tau21_lead"), tau2 / tau1, rtol=1e-6)
    np.testing.assert_array_equal(table.column("n_fat"), jets["counts"][keep])
    np.testing.assert_array_equal(sample.labels, (np.arange(200) % 3 == 0)[keep])
    assert sample.scores["lead_mass"].shape == (keep.sum(),)


def test_dimension_aliases():
    """Delphes names array branches with their dimension; the mapping may leave it off."""
    keys = [
        "FatJet",
        "FatJet/FatJet.PT",
        "FatJet.PT",
        "FatJet/FatJet.Tau[5]",
        "FatJet.Tau[5]",
        "M[2][3]",
    ]
    assert dimension_aliases(keys) == {"FatJet.Tau": 'get("FatJet.Tau[5]")', "M": 'get("M[2][3]")'}
    assert dimension_aliases(["x", "x[2]"]) == {}  # a branch of that name wins


def test_print_map_and_builtins_parse(capsys):
    assert main(["import", "root", "--print-map", "delphes"]) == 0
    text = capsys.readouterr().out
    assert 'tree = "Delphes"' in text and "FatJet.Tau" in text
    for name in ("nanoaod", "delphes"):
        mapping = load_mapping(name)
        assert mapping.levels["reco"].dijet is not None and mapping.tree


# --------------------------------------------------------------------------- bad input


def _fails(capsys, tmp_path, args, *words):
    out = tmp_path / "out.h5"
    code = main(["import", "root", *map(str, args), "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.h5")]  # no temporary
    return err


@pytest.fixture
def nano(tmp_path, rng):
    jets = fat_jets(120, rng)
    write_nanoaod(tmp_path / "nano.root", jets)
    return tmp_path / "nano.root"


def _map(tmp_path, text):
    path = tmp_path / "m.toml"
    path.write_text('tree = "Events"\n' + text)
    return path


def test_missing_branch_names_it(nano, tmp_path, capsys):
    _fails(
        capsys,
        tmp_path,
        [nano, "--map", "nanoaod", "--weight", "genWeight"],
        "no branch 'genWeight'",
        "weight",
    )
    path = _map(tmp_path, '[reco.columns]\nx = "FatJet_nope[:, 0]"\n')
    _fails(capsys, tmp_path, [nano, "--map", path], "FatJet_nope", "[reco.columns] x")


def test_jagged_branch_without_reduction(nano, tmp_path, capsys):
    path = _map(tmp_path, '[reco.columns]\npt = "FatJet_pt"\n')
    _fails(capsys, tmp_path, [nano, "--map", path], "jagged", "nth(X, 0)")


def test_index_past_the_end_suggests_nth(nano, tmp_path, capsys):
    path = _map(tmp_path, '[reco.columns]\npt = "FatJet_pt[:, 1]"\n')
    _fails(capsys, tmp_path, [nano, "--map", path], "nth(X, i)")


def test_nan_names_entry_and_column(nano, tmp_path, capsys):
    path = _map(tmp_path, '[reco.columns]\npt2 = "nth(FatJet_pt, 1)"\n')
    err = _fails(capsys, tmp_path, [nano, "--map", path], "'pt2'", "nan", "entry")
    # with a selection that requires the second jet it imports
    assert (
        main(
            [
                "import",
                "root",
                str(nano),
                "--map",
                str(path),
                "--selection",
                "nFatJet >= 2",
                "-q",
                "-o",
                str(tmp_path / "ok.h5"),
            ]
        )
        == 0
    )
    assert err


def test_missing_tree_truncated_and_not_root(nano, tmp_path, capsys):
    _fails(capsys, tmp_path, [nano, "--map", "delphes"], "no TTree 'Delphes'", "Events")
    cut = tmp_path / "cut.root"
    cut.write_bytes(nano.read_bytes()[: nano.stat().st_size // 2])
    _fails(capsys, tmp_path, [cut, "--map", "nanoaod"], "cut.root", "truncated")
    junk = tmp_path / "junk.root"
    junk.write_bytes(b"plain text\n" * 50)
    _fails(capsys, tmp_path, [junk, "--map", "nanoaod"], "not a readable ROOT file")
    _fails(capsys, tmp_path, [tmp_path / "none*.root", "--map", "nanoaod"], "no file matches")


def test_bad_mappings(nano, tmp_path, capsys):
    _fails(
        capsys,
        tmp_path,
        [nano, "--map", _map(tmp_path, "[reco]\ncolums = 1\n")],
        "unknown key 'colums'",
    )
    _fails(
        capsys,
        tmp_path,
        [nano, "--map", _map(tmp_path, "[reco.dijet]\npt = 'FatJet_pt'\n")],
        "needs eta",
    )
    _fails(capsys, tmp_path, [nano, "--map", _map(tmp_path, "[reco\n")], "not valid TOML")
    _fails(capsys, tmp_path, [nano, "--map", "atlas"], "no such mapping file")
    _fails(capsys, tmp_path, [nano, "--map", "simkit"], "simkit_metadata")
    with pytest.raises(SimkitError, match="maps no level"):
        from simkit.formats.root import parse_mapping

        parse_mapping({"tree": "Events"})


def test_missing_uproot_gives_an_install_hint(nano, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "uproot", None)
    _fails(capsys, tmp_path, [nano, "--map", "nanoaod"], "pip install 'simkit[root]'")
