"""What people and other systems read: CSV tables and FHIR reports, made from plain domain data
(never from the serving layer)."""
