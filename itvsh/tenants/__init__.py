"""Member municipalities (tenants): Gemeinden, Städte, Ämter and Kreise of Schleswig-Holstein."""
