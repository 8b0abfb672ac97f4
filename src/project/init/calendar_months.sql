{#- A mart: built as a table from the staging model through ref(), so Kura knows the order. -#}
{{ config(materialized='table') }}

select
    date_trunc('month', day) as month,
    count(*) as days,
    count(*) filter (where is_weekend) as weekend_days
from {{ ref('stg_calendar') }}
group by all
order by month
