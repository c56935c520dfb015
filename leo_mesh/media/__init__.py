"""Generated files: the object store they live in, and the signed links that fetch them."""
