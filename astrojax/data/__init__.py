"""Data: the built-in planet population, real archives, file formats, and loading for training.

Grouped by concern (arrows point one way: loading -> formats/archives -> generator):

- ``generator/``: the deterministic synthetic population (``physics``, ``sampling``,
  ``population``, ``text``) and the modalities drawn from it (``climate`` cubes, ``biochem``
  metabolic networks).
- ``formats/``: readers and stores: SBML (``sbml``), netCDF (``netcdf``), the TensorStore cube
  store (``store``) and the built-in population's store (``cubes``).
- ``archives/``: the archive clients (NASA Exoplanet Archive, MAST, ESO, ..., NCBI, UniProt,
  GTDB), the planet catalogue built from them (``catalog``) and its quality checks
  (``quality``).
- loading, at this level: the planet table and its one train/val/test split (``planets``), the
  text and cube pipelines (``pipeline``), graph batching (``graphs``), link splits of one
  network (``linkpred``), the byte tokenizer and the metabolic-network schema (``metabolic``).

Nothing here imports the models, the tasks or the train package.
"""
