"""Study modules: the code that exactly one chapter of the book uses, named after it."""
