"""Lake tables: a job's rows committed into an Iceberg table as the job runs, exactly once, and tables read
as a job's input. `types` holds the rules for the column types a table takes (plain Arrow); `iceberg` is the
edge where PyIceberg and the catalog live; `commits` the cadence at which a running job's committed files
reach the table. The output prefix stays the job's source of truth: the table registers its data files.
"""
