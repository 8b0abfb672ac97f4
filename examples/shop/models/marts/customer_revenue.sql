{{ config(materialized='table', tags=['finance']) }}

{%- set products = ['gizmo', 'sprocket', 'widget'] %}

select
    c.customer_id,
    c.name,
    r.region_name,
    count(o.order_id) as orders,
    {% for p in products -%}
    coalesce(sum(o.amount) filter (where o.product = '{{ p }}'), 0) as {{ p }}_revenue,
    {% endfor -%}
    coalesce(sum(o.amount), 0) as revenue
from {{ ref('stg_customers') }} c
left join {{ ref('stg_orders') }} o using (customer_id)
left join {{ ref('regions') }} r on r.region = c.region
group by all
