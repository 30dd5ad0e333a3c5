"""Study modules behind the notebooks: loops, tables and verdict checks, one module per topic."""
