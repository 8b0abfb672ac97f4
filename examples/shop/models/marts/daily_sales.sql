{#- Store revenue per day, appended as new days arrive (incremental on day + store). -#}
{{ config(materialized='incremental', unique_key=['day', 'store']) }}

select day, store, revenue
from {{ ref('stg_sales__sales') }}
{% if is_incremental() %}
where day >= (select max(day) from {{ this }})
{% endif %}
