{#-
    A staging model: one row per day of the year. A staging model cleans up one source:
    read it with source('<source>', '<table>'), or ref() its generated view
    stg_<source>__<table> (for a file orders.csv in data/uploads: stg_uploads__orders).
-#}
{{ config(materialized='view') }}

select
    cast(range as date) as day,
    dayname(range) as weekday,
    extract(isodow from range) >= 6 as is_weekend
from range(date '2026-01-01', date '2027-01-01', interval 1 day)
