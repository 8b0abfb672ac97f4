select
    customer_id,
    name,
    region,
    cast(signed_up as date) as signed_up,
    vip
from {{ source('uploads', 'customers') }}
